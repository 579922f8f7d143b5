"""The sink's offsets belong to one incarnation of a topic: another one is read from its start.

Reproduces the loss found by running the stack as a user: a data dir written from one embedded
broker, a fresh broker taking new traffic before the sink starts, and the sink seeking the new
topic to the old offset (300 of 400 acknowledged messages skipped for good). Each engine: on
Kafka, a fresh broker is a new cluster (new storage), as after its data was lost.
"""

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dataset import store
from dataset.rows import incarnation_tag
from dataset.sink import DatasetSink
from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker, free_port
from messagehooks.kafka import TopicIncarnations, ensure_project_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Settings
from tests.factories import BASE_TS, message
from tests.integration.engines import own_broker, own_settings

pytestmark = pytest.mark.integration


def _settings(broker: EmbeddedBroker | KafkaBroker, data_dir, unique: str, partitions: int = 1) -> Settings:
    return own_settings(
        broker,
        topic_prefix=f"inc{unique}.",
        partitions=partitions,
        data_dir=data_dir,
        sink_group=f"g{unique}",
        sink_flush_interval=0.2,
        session_timeout=2.0,
    )


async def _produce_messages(settings: Settings, ids: list[str], start_ts: float) -> None:
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        sends = []
        for i, message_id in enumerate(ids):  # all in flight at once, acknowledged before returning
            m = message(chat="c1", ts=start_ts + i, body=f"hello {message_id}", message_id=message_id)
            sends.append(await producer.send(settings.topics.messages, value=encode_message(m), key=b"c1"))
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def _message_ids(settings: Settings) -> list[str]:
    if not store.exists(settings.dataset_root, "messages"):
        return []
    return store.load("messages", root=settings.dataset_root, columns=["message_id"])["message_id"].tolist()


async def _sink_until(settings: Settings, rows: int, timeout: float = 40.0, during=None) -> DatasetSink:
    """Run a sink until the messages table has `rows` rows (or time runs out), then stop it."""
    sink = DatasetSink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    if during is not None:
        await during(sink)
    deadline = time.monotonic() + timeout
    while not task.done() and len(_message_ids(settings)) < rows and time.monotonic() < deadline:
        await asyncio.wait([task], timeout=0.2)
    stop.set()
    await asyncio.wait_for(task, 30)
    return sink


async def test_traffic_on_a_fresh_broker_before_the_sink_starts_is_all_written(engine, tmp_path, unique):
    old = [f"old-{i}" for i in range(300)]
    new = [f"new-{i}" for i in range(400)]
    with own_broker(engine, free_port(), tmp_path / "first-broker") as first:
        settings = _settings(first, tmp_path, unique)
        await ensure_project_topics(settings)
        await _produce_messages(settings, old, BASE_TS)
        await _sink_until(settings, len(old))
    assert len(_message_ids(settings)) == len(old)

    # A fresh broker (its topics start at offset 0 again) takes more records than the old
    # offset (300) before the sink starts on the same data dir.
    with own_broker(engine, free_port(), tmp_path / "second-broker") as second:
        settings = _settings(second, tmp_path, unique)
        await ensure_project_topics(settings)
        await _produce_messages(settings, new, BASE_TS + len(old))
        sink = await _sink_until(settings, len(old) + len(new))

    ids = _message_ids(settings)
    assert sorted(ids) == sorted(old + new)
    assert sink.stats.duplicates == 0


async def test_a_topic_deleted_and_created_again_under_a_running_sink_is_read_from_its_start(
    broker, tmp_path, unique
):
    settings = _settings(broker, tmp_path, unique, partitions=2)
    await ensure_project_topics(settings)
    before = [f"before-{i}" for i in range(50)]
    after = [f"after-{i}" for i in range(80)]
    await _produce_messages(settings, before, BASE_TS)

    async def recreate_the_topic(sink: DatasetSink) -> None:
        deadline = time.monotonic() + 30
        while len(_message_ids(settings)) < len(before) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a Delta table
            await asyncio.sleep(0.2)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([settings.topics.messages])
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
        await ensure_project_topics(settings)
        await _produce_messages(settings, after, BASE_TS + 1000)

    sink = await _sink_until(settings, len(before) + len(after), during=recreate_the_topic)
    assert sorted(_message_ids(settings)) == sorted(before + after)
    # Records read from the new topic before the sink noticed are read again: written once.
    assert sink.stats.rows == len(before) + len(after)


def test_an_incarnation_names_the_cluster_and_changes_when_the_topic_is_created_again(broker, unique):
    settings = _settings(broker, None, unique)
    asyncio.run(ensure_project_topics(settings))
    lookup = TopicIncarnations(settings.bootstrap)
    topic = settings.topics.messages
    first = lookup.lookup([topic, f"missing{unique}"])
    assert first[f"missing{unique}"] is None
    assert first[topic] is not None
    assert "/" in first[topic]

    async def recreate() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
        await asyncio.sleep(0.5)
        await ensure_project_topics(settings)

    asyncio.run(recreate())
    second = lookup.lookup([topic])
    assert second[topic] is not None
    assert second[topic] != first[topic]
    assert incarnation_tag(second[topic]) != incarnation_tag(first[topic])
