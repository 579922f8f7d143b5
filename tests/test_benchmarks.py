"""The benchmarks' own plumbing: nothing else runs their code between two `make bench`.

They once went stale against a changed `normalize` signature unnoticed, and their children
once resolved `auto` on their own (Kafka wherever Java is) while running against Tansu.
"""

import asyncio
import uuid

import pytest

from benchmarks.bench_backfill import simulated_messages
from benchmarks.bench_exports import measure, write_dataset
from benchmarks.bench_sink import distinct_pairs
from benchmarks.bench_stream import prefill
from benchmarks.bench_upkeep import arm
from benchmarks.engine import broker_env, broker_settings, started_broker
from messagehooks.engines import resolve, tansu_fixes


@pytest.mark.integration
def test_a_tansu_benchmark_tells_its_processes_the_engine() -> None:
    with started_broker("tansu") as broker:
        env = broker_env(broker)
        settings = broker_settings(broker, topic_prefix="bench.")
        assert env["MESSAGEHOOKS_BROKER_ENGINE"] == "tansu"
        assert env["MESSAGEHOOKS_BROKER_PORT"] == str(broker.port)
        assert settings.bootstrap == broker.bootstrap
        assert settings.topic_prefix == "bench."
        assert tansu_fixes(settings), resolve(settings)


def test_the_backfill_and_sink_inputs_build() -> None:
    messages = simulated_messages(500)
    pairs = distinct_pairs(50)
    assert len(messages) == 500
    assert len({m.message_id for m in messages}) == 500
    assert len(set(pairs)) == 50


@pytest.mark.integration
def test_the_stream_benchmark_prefills_a_topic(tansu) -> None:
    topic = f"bench{uuid.uuid4().hex[:8]}.messages"
    sent = asyncio.run(prefill(tansu.bootstrap, topic, 300))
    assert sent >= 300


def test_the_upkeep_benchmark_measures_the_table_it_wrote(tmp_path) -> None:
    result = arm(str(tmp_path), 5, upkeep=True, repeat=1)
    assert (result["commits"], result["live_files"], result["disk_files"]) == (5, 5, 5)
    assert result["upkeep_runs"] == 1  # the first commit's: files counted, the first vacuum


def test_the_export_benchmark_measures_each_format_against_parquet(tmp_path) -> None:
    sizes = write_dataset(str(tmp_path / "datasets"), 2000)
    assert min(sizes.values()) > 0
    (tmp_path / "out").mkdir()
    result = measure(str(tmp_path / "datasets"), tmp_path / "out", repeat=1)
    for fmt in ("hf", "chat_jsonl"):
        assert result[f"export_{fmt}_rows_per_s"] > 0
        ratio = result[f"export_{fmt}_rows_per_s"] / result[f"export_{fmt}_parquet_rows_per_s"]
        assert result[f"export_{fmt}_vs_parquet"] == ratio
