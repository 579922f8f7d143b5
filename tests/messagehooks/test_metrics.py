"""Prometheus metrics of the worker (a real process) and of the sink (in-process)."""

import asyncio
import time

import httpx
import msgspec
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dataset.sink import DatasetSink
from devtools.tansu import free_port
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Settings
from tests.conftest import broker_env
from tests.factories import message
from tests.integration.engines import own_settings
from tests.integration.processes import WorkerProcess
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def _produce(settings: Settings, count: int) -> None:
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        now = time.time()
        for i in range(count):
            m = message(chat=f"m{i % 4}", role="bot" if i % 2 else "customer", ts=now + i, message_id=f"x{i}")
            m = msgspec.structs.replace(m, received_at=time.time())
            await producer.send_and_wait(settings.topics.messages, encode_message(m), key=m.chat_id.encode())
    finally:
        await producer.stop()


def test_worker_serves_counts_open_conversations_and_lag(broker, unique, tmp_path):
    port = free_port()
    settings = own_settings(broker, topic_prefix=f"mt{unique}.", partitions=3)
    asyncio.run(ensure_project_topics(settings))
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": settings.topic_prefix,
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_WORKER_ID": f"mw{unique}",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
        "MESSAGEHOOKS_WORKER_METRICS_PORT": str(port),
    }
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        asyncio.run(_produce(settings, 40))
        samples: dict[str, float] = {}

        def counted() -> bool:
            nonlocal samples
            try:
                samples = _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
            except httpx.TransportError:
                samples = {}
            return (
                samples.get("messagehooks_worker_messages_total") == 40
                and samples.get("messagehooks_worker_open_conversations") == 4
            )

        eventually(counted, timeout=60, interval=0.5)
    finally:
        worker.stop()
    assert samples["messagehooks_worker_messages_total"] == 40
    assert samples["messagehooks_worker_open_conversations"] == 4  # four chats, none idle for 30 min
    lags = {k: v for k, v in samples.items() if k.startswith("messagehooks_worker_consumer_lag{")}
    assert len(lags) == 3
    assert all(v == 0 for v in lags.values())


async def test_sink_counts_rows_commits_and_end_to_end_delay(broker, unique, tmp_path):
    settings = own_settings(
        broker,
        topic_prefix=f"ms{unique}.",
        partitions=3,
        data_dir=tmp_path,
        sink_group=f"ms{unique}",
        sink_flush_interval=0.2,
    )
    await ensure_project_topics(settings)
    await _produce(settings, 30)
    sink = DatasetSink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + 30
    while sink.stats.rows < 30 and time.monotonic() < deadline:
        await asyncio.wait([task], timeout=0.1)
    await asyncio.wait([task], timeout=0.3)  # one more loop: the gauges after the commit
    stop.set()
    await task
    samples = _samples(generate_latest(sink.metrics.registry).decode())
    assert samples["messagehooks_sink_rows_total"] == 30
    assert samples["messagehooks_sink_table_rows_total{table=messages}"] == 30
    assert samples["messagehooks_sink_commits_total"] >= 1
    assert samples["messagehooks_sink_commit_seconds_count{table=messages}"] >= 1
    assert samples["messagehooks_sink_e2e_seconds_count"] == 30
    assert samples["messagehooks_sink_seconds_since_commit"] < 60
    assert sum(v for k, v in samples.items() if k.startswith("messagehooks_sink_consumer_lag{")) == 0
