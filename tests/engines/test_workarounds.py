"""Each engine-switched setting: what it does on the engine that has it, and why the other lacks it."""

import asyncio

import httpx
import pytest
from aiokafka.errors import KafkaError

from messagehooks.kafka import engine_producer_settings, ensure_topics, make_producer
from messagehooks.settings import Settings
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess

pytestmark = pytest.mark.integration


def test_the_ingest_produces_idempotently_except_on_tansu():
    assert engine_producer_settings(Settings(broker_engine="kafka")) == {"enable_idempotence": True}
    assert engine_producer_settings(Settings(kafka_bootstrap="kafka:9092")) == {"enable_idempotence": True}
    assert engine_producer_settings(Settings(broker_engine="tansu")) == {"enable_idempotence": False}


async def _send_idempotently(bootstrap: str, topic: str) -> None:
    await ensure_topics(bootstrap, [topic], partitions=1)
    producer = make_producer(bootstrap, enable_idempotence=True)
    try:
        await asyncio.wait_for(producer.start(), 20)
        await asyncio.wait_for(producer.send_and_wait(topic, b"once"), 20)
    finally:
        await producer.stop()


def test_tansu_cannot_start_an_idempotent_producer(tansu, unique):
    with pytest.raises(KafkaError):  # InitProducerId answered with an unknown error
        asyncio.run(_send_idempotently(tansu.bootstrap, f"idem{unique}"))


def test_the_ingest_on_kafka_acknowledges_with_an_idempotent_producer(kafka, unique, tmp_path):
    env = {
        "MESSAGEHOOKS_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "MESSAGEHOOKS_TOPIC_PREFIX": f"idem{unique}.",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log")
    ingest.env["MESSAGEHOOKS_KAFKA_BOOTSTRAP"] = kafka.bootstrap  # ChildProcess drops it by default
    ingest.start()
    try:
        ingest.wait_ready()
        for i in range(20):
            body = landbot_body(landbot_message(chat=5, ts=1_790_000_000 + i, uuid=f"{unique}-{i}"))
            assert httpx.post(f"{ingest.url}/hooks/default", json=body, timeout=10).status_code == 200
        records = asyncio.run(read_topic(kafka.bootstrap, f"idem{unique}.messages", expect=20))
        assert sorted(r["message_id"] for r in records) == sorted(f"{unique}-{i}" for i in range(20))
        assert "InitProducerId" not in ingest.logs()
    finally:
        ingest.stop()
