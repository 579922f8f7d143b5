"""Another team's subscriber on each engine: librdkafka (confluent-kafka) in a consumer group.

It reads turn pairs, commits, stops, and a new member of the same group resumes exactly after
the commit: nothing read twice, nothing skipped.
"""

import asyncio
import json
import time
from typing import Any

import pytest
from confluent_kafka import Consumer

from features.batch import build_dataset
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.settings import Settings
from streams.codec import encode_record
from tests.factories import BASE_TS, example_chat

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(broker) -> str:
    """The bootstrap of the session's broker of each engine."""
    return str(broker.bootstrap)


async def _publish_pairs(settings: Settings, chats: int) -> list[str]:
    await ensure_project_topics(settings)
    producer = make_producer(settings.bootstrap)
    await producer.start()
    ids = []
    try:
        for n in range(chats):
            pairs, _ = build_dataset(example_chat(str(100 + n), base=BASE_TS + n))
            for pair in pairs:
                await producer.send_and_wait(
                    settings.topics.turn_pairs, encode_record(pair), key=pair.chat_id.encode()
                )
                ids.append(pair.pair_id)
    finally:
        await producer.stop()
    return ids


def _consume(config: dict[str, Any], topic: str, count: int, timeout: float = 60.0) -> list[str]:
    """Read `count` records as a group member, commit them synchronously, leave the group."""
    consumer = Consumer(config)
    consumer.subscribe([topic])
    ids: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while len(ids) < count and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None or record.error():
                continue
            ids.append(json.loads(record.value())["pair_id"])
            if len(ids) == count:
                consumer.commit(message=record, asynchronous=False)
        # Records of other partitions fetched past `count` were not committed: read again later.
    finally:
        consumer.close()
    return ids


def test_a_librdkafka_subscriber_resumes_after_its_commit(bootstrap, unique):
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"sub{unique}.", partitions=1)
    published = asyncio.run(_publish_pairs(settings, chats=6))
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": f"subscribers{unique}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    }
    half = len(published) // 2
    first = _consume(config, settings.topics.turn_pairs, half)
    second = _consume(config, settings.topics.turn_pairs, len(published) - half)
    assert first == published[:half]  # one partition: the order of publication
    assert second == published[half:]
