"""The dataset sink in-process on the real broker and real Delta tables: the exactly-once protocol.

Each test crashes the sink at one point of a commit and checks that a fresh sink ends with every
row exactly once, and that it resumed from the offsets in the Delta log (it re-read nothing).
"""

import asyncio
import time

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from dataset import store, tables
from dataset.sink import DatasetSink
from features.batch import build_dataset
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Settings
from streams.codec import encode_record
from tests.factories import BASE_TS, example_chat, message
from tests.integration.engines import own_settings

pytestmark = pytest.mark.integration

MESSAGES = 120


class Crash(Exception):
    """Stands for the process dying at the patched point."""


@pytest.fixture
def settings(broker, unique, tmp_path) -> Settings:
    settings = own_settings(
        broker,
        topic_prefix=f"sk{unique}.",
        partitions=3,
        data_dir=tmp_path,
        sink_group=f"g{unique}",
        sink_flush_interval=0.2,
        sink_flush_rows=40,
        session_timeout=2.0,
    )
    asyncio.run(ensure_project_topics(settings))
    return settings


async def _produce(settings: Settings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:  # all in flight at once, acknowledged before returning
        await asyncio.gather(
            *[await producer.send(topic, value=value, key=key) for topic, key, value in records]
        )
    finally:
        await producer.stop()


def _message_records(settings: Settings, count: int, start: int = 0) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i in range(start, start + count):
        m = message(chat=f"c{i % 7}", ts=BASE_TS + i, body=f"hello {i}", message_id=f"id-{i}")
        out.append((settings.topics.messages, m.chat_id.encode(), encode_message(m)))
    return out


async def _run_until(sink: DatasetSink, done, timeout: float = 30.0) -> None:
    """Run `sink` until `done()` holds after a commit (or a crash), then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + timeout
    while not task.done() and not done() and time.monotonic() < deadline:
        await asyncio.wait([task], timeout=0.1)  # the table is polled: nothing to wait on
    stop.set()
    await asyncio.wait_for(task, 30)


def _ids(settings: Settings, table: str = "messages") -> list[str]:
    if not store.exists(settings.dataset_root, table):
        return []
    key = store.spec(table).key
    return store.load(table, root=settings.dataset_root, columns=[key])[key].tolist()


async def test_crash_after_the_delta_commit_before_the_kafka_commit(settings):
    await _produce(settings, _message_records(settings, MESSAGES))
    first = DatasetSink(settings)

    async def crash(offsets):
        raise Crash

    first._commit_kafka = crash  # dies right after its first Delta commit
    with pytest.raises(Crash):
        await _run_until(first, lambda: False)
    committed = _ids(settings)
    assert 0 < len(committed) < MESSAGES + 1

    second = DatasetSink(settings)
    await _run_until(second, lambda: len(_ids(settings)) >= MESSAGES)
    ids = _ids(settings)
    assert sorted(ids) == sorted(f"id-{i}" for i in range(MESSAGES))
    # It resumed after the rows the first sink committed (Kafka knew of no commit at all).
    assert second.stats.records == MESSAGES - len(committed)
    assert second.stats.duplicates == 0


@pytest.mark.parametrize("landed", [False, True], ids=["commit-lost", "commit-landed-answer-lost"])
async def test_a_failed_delta_commit_is_retried_from_the_log(settings, monkeypatch, landed):
    await _produce(settings, _message_records(settings, MESSAGES))
    real_write = store.write
    calls = []

    def write_failing_once(root, table, data, **kwargs):
        calls.append(table)
        if len(calls) == 1:
            if landed:  # the commit is in the log, but the writer never learns it
                real_write(root, table, data, **kwargs)
            raise OSError("connection reset while committing")
        return real_write(root, table, data, **kwargs)

    monkeypatch.setattr(store, "write", write_failing_once)
    sink = DatasetSink(settings)
    await _run_until(sink, lambda: len(_ids(settings)) >= MESSAGES)
    assert sink.stats.failed_commits == 1
    ids = _ids(settings)
    assert sorted(ids) == sorted(f"id-{i}" for i in range(MESSAGES))


async def test_repeats_in_the_topics_are_written_once_and_stragglers_flagged_late(settings):
    chat = example_chat("77", base=BASE_TS)
    pairs, conversations = build_dataset(chat)
    late = message(chat="c0", ts=BASE_TS - 60, body="late", message_id="late-1")
    records = _message_records(settings, 20)
    records += _message_records(settings, 20)  # every message redelivered (Landbot retries)
    records.append((settings.topics.messages, b"c0", encode_message(late)))
    for pair in pairs * 2:  # re-emitted by a worker after a crash
        records.append((settings.topics.turn_pairs, b"77", encode_record(pair)))
    for conversation in conversations * 2:
        records.append((settings.topics.conversations, b"77", encode_record(conversation)))
    await _produce(settings, records)

    sink = DatasetSink(settings)
    await _run_until(sink, lambda: len(_ids(settings)) >= 21 and len(_ids(settings, "conversations")) >= 1)
    messages = store.load("messages", root=settings.dataset_root)
    assert sorted(messages.message_id) == sorted([f"id-{i}" for i in range(20)] + ["late-1"])
    assert messages.set_index("message_id").late.to_dict()["late-1"]
    assert not messages[messages.message_id != "late-1"].late.any()
    assert sorted(_ids(settings, "turn_pairs")) == sorted(p.pair_id for p in pairs)
    assert _ids(settings, "conversations") == [c.conversation_id for c in conversations]

    restarted = DatasetSink(settings)
    await _run_until(restarted, lambda: False, timeout=3)
    assert restarted.stats.records == 0  # resumed at the end: nothing read twice


async def test_one_message_id_on_five_dates_is_one_row_whether_pending_or_committed(settings):
    day = 86_400
    same_id = [
        message(chat="c1", ts=BASE_TS + d * day, body=f"again {d}", message_id="uuid-1") for d in range(5)
    ]
    records = [(settings.topics.messages, b"c1", encode_message(m)) for m in same_id[:3]]
    records += _message_records(settings, 10)
    await _produce(settings, records)
    first = DatasetSink(settings)
    await _run_until(first, lambda: len(_ids(settings)) >= 11)
    assert first.stats.duplicates == 2  # two repeats on other dates while the first was pending

    await _produce(settings, [(settings.topics.messages, b"c1", encode_message(m)) for m in same_id[3:]])
    await _produce(settings, _message_records(settings, 5, start=10))
    second = DatasetSink(settings)  # a fresh index: the first copy is only in the table
    await _run_until(second, lambda: len(_ids(settings)) >= 16)
    ids = _ids(settings)
    assert sorted(ids) == sorted(["uuid-1"] + [f"id-{i}" for i in range(15)])
    assert second.stats.duplicates == 2
    dates = store.load("messages", root=settings.dataset_root).set_index("message_id")
    assert str(dates.loc["uuid-1", tables.PARTITION_COLUMN]) == str(store.event_date(BASE_TS))


async def test_one_message_id_in_two_chats_is_two_rows_and_each_chats_repeat_is_dropped(settings):
    """A message is (chat id, message id), as in the stream: one chat's uuid never hides another's."""
    day = 86_400

    def record(chat: str, ts: float, body: str) -> tuple[str, bytes, bytes]:
        m = message(chat=chat, ts=ts, body=body, message_id="uuid-x")
        return settings.topics.messages, chat.encode(), encode_message(m)

    # Chat c1, then c2 with the same id, then c1 again (a retry) while all are pending.
    await _produce(
        settings, [record("c1", BASE_TS, "one"), record("c2", BASE_TS, "two"), record("c1", BASE_TS, "one")]
    )
    first = DatasetSink(settings)
    await _run_until(first, lambda: len(_ids(settings)) >= 2)
    assert first.stats.duplicates == 1

    # Against the committed table (a fresh sink): chat c3 is new, c2 on another date is a repeat.
    await _produce(settings, [record("c3", BASE_TS, "three"), record("c2", BASE_TS + day, "two")])
    second = DatasetSink(settings)
    await _run_until(second, lambda: second.stats.records >= 2 and len(_ids(settings)) >= 3)
    rows = store.load("messages", root=settings.dataset_root)
    assert sorted(zip(rows.chat_id, rows.message_id, strict=True)) == [
        (c, "uuid-x") for c in ("c1", "c2", "c3")
    ]
    assert second.stats.duplicates == 1


async def test_a_row_that_does_not_fit_the_schema_is_skipped_not_retried_forever(settings):
    poison = msgspec.structs.replace(message(chat="c1", ts=BASE_TS, message_id="poison"), seq=2**70)
    records = _message_records(settings, 10)
    records.insert(5, (settings.topics.messages, b"c1", encode_message(poison)))
    dateless = message(chat="c2", ts=1e20, message_id="dateless")  # no UTC date to partition by
    records.insert(7, (settings.topics.messages, b"c2", encode_message(dateless)))
    await _produce(settings, records)
    sink = DatasetSink(settings)
    await _run_until(sink, lambda: len(_ids(settings)) >= 10)
    assert sorted(_ids(settings)) == sorted(f"id-{i}" for i in range(10))
    assert sink.stats.undecodable == 2
    assert sink.stats.failed_commits == 0


async def test_records_arriving_while_the_sink_joins_are_all_written(settings):
    """Traffic flowing while the group assigns the sink its partitions (a restart under load)."""
    records = _message_records(settings, 300)

    async def trickle() -> None:
        for start in range(0, len(records), 20):
            await _produce(settings, records[start : start + 20])
            await asyncio.sleep(0.1)

    producing = asyncio.create_task(trickle())
    await asyncio.sleep(0.3)  # some records are there before the sink starts, more come during the join
    sink = DatasetSink(settings)
    await _run_until(sink, lambda: producing.done() and len(_ids(settings)) >= 300, timeout=60)
    await producing
    assert sorted(_ids(settings)) == sorted(f"id-{i}" for i in range(300))


@pytest.fixture
async def partition_zero(settings):
    """A real consumer that owns `messages` partition 0, holding 40 records."""
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        for topic, key, value in _message_records(settings, 40):
            await producer.send_and_wait(topic, value=value, key=key, partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    tp = TopicPartition(settings.topics.messages, 0)
    consumer.assign([tp])
    try:
        yield consumer, tp
    finally:
        await consumer.stop()


async def _read_to_end(sink: DatasetSink, consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> None:
    deadline = time.monotonic() + 20
    while sink.positions.expected[tp] < end and time.monotonic() < deadline:
        for records in (await consumer.getmany(tp, timeout_ms=200)).values():
            await sink._accept(consumer, tp, records)


async def test_a_stale_fetch_past_unread_records_seeks_back_instead_of_skipping(settings, partition_zero):
    """The loss CI found: records fetched from past the sink's position (the end-offset probe, or
    a fetch racing a rebalance's seek) were taken, and the ones before them never written."""
    consumer, tp = partition_zero
    sink = DatasetSink(settings)
    sink.positions.expected[tp] = 0
    consumer.seek(tp, 30)
    stale = next(iter((await consumer.getmany(tp, timeout_ms=5000)).values()))
    assert stale[0].offset == 30
    await sink._accept(consumer, tp, stale)
    assert sink.stats.records == 0
    assert await consumer.position(tp) == 0
    await _read_to_end(sink, consumer, tp, 40)
    assert [row["message_id"] for row in sink.buffers["messages"].rows] == [f"id-{i}" for i in range(40)]
    assert (sink.stats.reseeks, sink.stats.expired) == (1, 0)


async def test_records_deleted_by_retention_before_the_sink_read_them_are_counted(
    settings, partition_zero, monkeypatch
):
    """A gap the broker confirms (its log now starts past the sink's position) is taken and
    counted, not sought forever. Tansu applies no retention: the broker's answer is injected."""
    consumer, tp = partition_zero
    sink = DatasetSink(settings)
    sink.positions.expected[tp] = 3

    async def log_starts_at_7(partitions):
        return dict.fromkeys(partitions, 7)

    monkeypatch.setattr(consumer, "beginning_offsets", log_starts_at_7)
    consumer.seek(tp, 7)
    await _read_to_end(sink, consumer, tp, 40)
    assert [row["message_id"] for row in sink.buffers["messages"].rows] == [f"id-{i}" for i in range(7, 40)]
    assert (sink.stats.reseeks, sink.stats.expired) == (0, 4)


async def test_a_graceful_stop_reads_the_topics_to_their_end(settings):
    """`up` stops the ingest and the worker, then the sink: what they published last must reach
    the tables, since an in-memory broker takes whatever is left in the topics with it."""
    await _produce(settings, _message_records(settings, 10))
    sink = DatasetSink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + 30
    while len(_ids(settings)) < 10 and time.monotonic() < deadline:
        await asyncio.wait([task], timeout=0.1)  # the table is polled: nothing to wait on
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, value=value, key=key)
            for topic, key, value in _message_records(settings, 1000, start=10)
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    stop.set()  # the last records are published (acknowledged), not necessarily read yet
    await asyncio.wait_for(task, 30)
    assert sorted(_ids(settings)) == sorted(f"id-{i}" for i in range(1010))


async def test_a_sink_waiting_for_its_topics_stops_when_asked(broker, unique, tmp_path):
    """Kafka does not create the topics a consumer asks for: a sink started before `messagehooks
    topics` waits for them in its start, and ignored Ctrl-C there (Tansu creates them: it starts)."""
    settings = own_settings(broker, topic_prefix=f"none{unique}.", data_dir=tmp_path, sink_group=f"n{unique}")
    stop = asyncio.Event()
    task = asyncio.create_task(DatasetSink(settings).run(stop))
    await asyncio.wait([task], timeout=2)  # it is starting (on Kafka: waiting for the topics)
    stop.set()
    await asyncio.wait_for(task, 30)  # without the fix aiokafka gave up after 40 s, with an error
