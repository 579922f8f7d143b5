"""docs/operations.md and the Grafana dashboard name only metrics the processes really expose."""

import json
import re
from pathlib import Path

from dataset.sink import SinkStats
from ingest.metrics import IngestMetrics
from messagehooks.metrics import Gauges, sink_metrics, worker_registry
from streams.sessionizer import StreamStats

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _families() -> dict[str, str]:
    registries = [
        IngestMetrics().registry,
        worker_registry(StreamStats(), Gauges()),
        sink_metrics(SinkStats(), Gauges()).registry,
    ]
    return {family.name: family.type for registry in registries for family in registry.collect()}


def _sample_names() -> set[str]:
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    return {name + suffix for name, kind in _families().items() for suffix in suffixes.get(kind, [""])}


def test_every_metric_is_documented_with_its_type():
    text = (DOCS / "operations.md").read_text()
    for name, kind in _families().items():
        row = re.search(rf"^\| `{name}` \| (\w+) \|", text, re.MULTILINE)
        assert row is not None, f"{name} is not in docs/operations.md"
        assert row.group(1) == kind, name


def test_the_dashboard_parses_and_queries_only_real_metrics():
    dashboard = json.loads((DOCS / "grafana" / "messagehooks.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 6
    used = {m for expr in expressions for m in re.findall(r"messagehooks_[a-z0-9_]+", expr)}
    assert used <= _sample_names(), used - _sample_names()
    for wanted in ("requests", "dead_letters", "consumer_lag", "pairs", "spool_depth", "e2e"):
        assert any(wanted in m for m in used), wanted
