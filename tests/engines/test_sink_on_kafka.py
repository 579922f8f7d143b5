"""The sink on Apache Kafka where the log has offsets without records (transaction markers).

The sink reads committed transactions only (a worker with exactly_once aborts what it sent
after its last commit when it is killed); markers and aborted records are holes it reads past.
"""

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from dataset import store
from dataset.sink import DatasetSink
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Settings
from tests.factories import BASE_TS, message

pytestmark = pytest.mark.integration


async def _produce_around_a_transaction(settings: Settings, *, commit: bool = True) -> None:
    """id-0 plainly, id-1 in a transaction committed or aborted (its marker takes the next
    offset), id-2 plainly."""
    await ensure_project_topics(settings)
    topic = settings.topics.messages
    records = [message(chat="c", ts=BASE_TS + i, body=f"b{i}", message_id=f"id-{i}") for i in range(3)]
    plain = make_producer(settings.bootstrap)
    transactional = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap, transactional_id=f"upstream-{settings.topic_prefix}"
    )
    await plain.start()
    await transactional.start()
    try:
        await plain.send_and_wait(topic, encode_message(records[0]), key=b"c", partition=0)
        await transactional.begin_transaction()
        await transactional.send_and_wait(topic, encode_message(records[1]), key=b"c", partition=0)
        await (transactional.commit_transaction() if commit else transactional.abort_transaction())
        await _until_end_offset(settings.bootstrap, TopicPartition(topic, 0), 3)  # the marker is written
        await plain.send_and_wait(topic, encode_message(records[2]), key=b"c", partition=0)
    finally:
        await transactional.stop()
        await plain.stop()


async def _until_end_offset(bootstrap: str, tp: TopicPartition, end: int) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        for _ in range(400):  # 20 s at most
            if (await consumer.end_offsets([tp]))[tp] >= end:
                return
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


@pytest.mark.parametrize(
    ("commit", "ids", "skipped"), [(True, ["id-0", "id-1", "id-2"], 1), (False, ["id-0", "id-2"], 2)]
)
def test_offsets_without_records_are_read_past_not_sought_forever(
    kafka, unique, tmp_path, commit, ids, skipped
):
    """Before: the sink sought back to the marker's offset for ever (expected 2, got 3) and the
    record after it never reached the table; on the embedded broker the same loop lost 449 of
    1,800 messages at a stop of `up`. An aborted record is not written (read committed), and
    neither it nor the marker counts as expired (records lost to retention, an alert)."""
    settings = Settings(
        kafka_bootstrap=kafka.bootstrap,
        topic_prefix=f"hole{unique}.",
        partitions=1,
        data_dir=tmp_path,
        sink_group=f"g{unique}",
        sink_flush_interval=0.2,
    )
    asyncio.run(_produce_around_a_transaction(settings, commit=commit))
    sink = DatasetSink(settings)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        deadline = time.monotonic() + 40
        while not task.done() and len(_ids(settings)) < len(ids) and time.monotonic() < deadline:
            await asyncio.wait([task], timeout=0.2)
        stop.set()
        await asyncio.wait_for(task, 40)

    asyncio.run(run())
    assert sorted(_ids(settings)) == ids
    assert (sink.stats.skipped, sink.stats.expired) == (skipped, 0)
    assert sink.stats.reseeks == 3  # HOLE_AFTER_SEEKS tries, then the gap is the log's


def _ids(settings: Settings) -> list[str]:
    if not store.exists(settings.dataset_root, "messages"):
        return []
    return store.load("messages", root=settings.dataset_root, columns=["message_id"])["message_id"].tolist()
