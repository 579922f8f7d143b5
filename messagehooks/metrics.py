"""Prometheus metrics of the stream worker and the dataset sink (docs/operations.md lists them).

Counters come from the processes' own stats objects, read at scrape time by a collector; values
that need the event loop's data structures (open conversations, lag per partition) are computed
by the process on its loop every few seconds and only read here, from the HTTP server's thread.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from messagehooks.errors import PortUnavailable
from messagehooks.ports import Listener, unavailable_message

logger = logging.getLogger(__name__)

E2E_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass
class Gauges:
    """Values the owning process refreshes on its event loop."""

    values: dict[str, float] = field(default_factory=dict)
    lag: dict[tuple[str, int], float] = field(default_factory=dict)


class StatsCollector(Collector):
    """Exposes a stats dataclass's int/float fields as counters, plus the process's gauges."""

    def __init__(self, prefix: str, stats: Any, gauges: Gauges, help_texts: dict[str, str]) -> None:
        self._prefix, self._stats, self._gauges, self._help = prefix, stats, gauges, help_texts

    def collect(self) -> Iterator[Any]:
        """Read the counters and gauges at scrape time (no copies to keep in step)."""
        counters = {item.name for item in fields(self._stats)}
        for name, help_text in self._help.items():
            if name in counters:
                family = CounterMetricFamily(f"{self._prefix}_{name}", help_text)
                family.add_metric([], float(getattr(self._stats, name)))
                yield family
            else:  # a gauge the process refreshes (0 until its first refresh)
                gauge = GaugeMetricFamily(f"{self._prefix}_{name}", help_text)
                gauge.add_metric([], self._gauges.values.get(name, 0.0))
                yield gauge
        lag = GaugeMetricFamily(
            f"{self._prefix}_consumer_lag",
            "records not processed yet, per topic partition (high watermark - next offset)",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(self._gauges.lag.items()):
            lag.add_metric([topic, str(partition)], value)
        yield lag


WORKER_HELP = {
    "messages": "messages processed by this worker",
    "duplicates": "messages dropped as repeats of an id already seen (Landbot retries)",
    "late": "messages older than the allowed lateness: stored, not paired",
    "pairs": "turn pairs emitted",
    "conversations": "conversations closed and emitted",
    "dead_letters": "records the worker could not process (dead-lettered)",
    "open_conversations": "chats with an open conversation or buffered messages in this worker",
    "chats": "chats whose state this worker holds (open or remembered for deduplication)",
}

SINK_HELP = {
    "records": "records read from the topics",
    "rows": "rows committed to Delta tables",
    "duplicates": "rows dropped because their id is already in the table",
    "late": "messages flagged late",
    "undecodable": "records skipped because they are not of their topic's schema",
    "reseeks": "times the consumer had moved past records the sink had not read, and was sought back",
    "expired": "records deleted from a topic (retention) before the sink read them",
    "skipped": "offsets holding no record for the sink (transaction markers, aborted transactions)",
    "commits": "Delta commits (table versions) written",
    "failed_commits": "Delta commits that failed (the sink rewound to the log's offsets)",
    "seconds_since_commit": "seconds since the last successful Delta commit",
    "compactions": "compactions of a table by the sink (small files merged, log checkpointed)",
    "compacted_files": "small files the sink's compactions merged",
    "vacuumed_files": "files the sink's vacuums deleted (unused for MESSAGEHOOKS_RETENTION_HOURS)",
    "failed_upkeeps": "compactions or vacuums that failed (tried again on their schedule; rows are safe)",
}


def worker_registry(stats: Any, gauges: Gauges) -> CollectorRegistry:
    """The worker's registry: its StreamStats as counters, its gauges and lag."""
    registry = CollectorRegistry()
    registry.register(StatsCollector("messagehooks_worker", stats, gauges, WORKER_HELP))
    return registry


@dataclass
class SinkMetrics:
    """The sink's registry, with the histograms it observes at commit time."""

    registry: CollectorRegistry
    table_rows: Counter
    commit_seconds: Histogram
    e2e_seconds: Histogram


def sink_metrics(stats: Any, gauges: Gauges) -> SinkMetrics:
    """The sink's registry: SinkStats as counters, gauges, lag, commit time and e2e delay."""
    registry = CollectorRegistry()
    registry.register(StatsCollector("messagehooks_sink", stats, gauges, SINK_HELP))
    return SinkMetrics(
        registry=registry,
        table_rows=Counter(
            "messagehooks_sink_table_rows",
            "rows committed, per Delta table",
            ["table"],
            registry=registry,
        ),
        commit_seconds=Histogram(
            "messagehooks_sink_commit_seconds",
            "time to commit one table's batch to Delta",
            ["table"],
            registry=registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        ),
        e2e_seconds=Histogram(
            "messagehooks_sink_e2e_seconds",
            "from the ingest's receipt of a message (received_at) to its row's commit",
            registry=registry,
            buckets=E2E_BUCKETS,
        ),
    )


def serve(registry: CollectorRegistry, listener: Listener) -> WSGIServer | None:
    """Serve `registry` on the listener's host and port (port 0: not at all), or fail.

    A taken port is fatal: logging it and going on once left the `up` panel showing another
    process's figures.

    Returns the server (it runs in a daemon thread; `shutdown()` stops it), None for port 0.

    Raises:
        PortUnavailable: the port is taken or cannot be bound on the host.
    """
    if not listener.port:
        return None
    try:
        server, _ = start_http_server(listener.port, addr=listener.host, registry=registry)
    except OSError as exc:
        raise PortUnavailable(unavailable_message(listener, exc)) from exc
    logger.info("%s on %s:%d/metrics", listener.name, listener.host, listener.port)
    return server
