"""Each fix of streams/patches/ against real Faust workers, on each broker engine.

The workers apply the fixes the stream worker applies on that engine (the Faust/aiokafka ones
everywhere, the Tansu ones on Tansu only), and each test asserts that switch next to what the fix
is for. On Tansu every test fails without its fix (checked by running the workers with
``COMPAT_SKIP_FIXES``, see tests/integration/compat_app.py). On Kafka b, c and d pass with the
Tansu fix off, as the product runs. On Kafka test_a without the three Faust/aiokafka fixes lost
20 to 80 events and delivered 4 twice in 3 of 6 runs (a race: the other 3 passed); test_a2 runs
in-process and shows that client bug itself on both engines. test_e shows where `end_offsets`
must probe.

Workers are child processes with a unique app id (= group id, whose session timeout Tansu
freezes at the first join), web disabled and a 2 s session.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker
from messagehooks.engines import resolve, tansu_fixes
from messagehooks.kafka import end_offsets, ensure_topics, make_producer
from messagehooks.settings import Settings, load_settings
from streams.patches import (
    EMBEDDED_FETCH_MAX_WAIT_MS,
    faust_fixes,
    patch_changelog_highwaters,
    patch_create_topic_waits_for_metadata,
    patch_fetch_max_wait,
    patch_fetch_only_active_partitions,
    patch_flow_control_resume,
    patch_leave_group_generation_zero,
    patch_recovery_seek_before_resume,
)
from tests.conftest import broker_env

pytestmark = pytest.mark.integration

PARTITIONS = 4
ROOT = Path(__file__).resolve().parents[2]
Records = list[dict[str, Any]]

#: Whether a fix is on, per engine: the Faust/aiokafka fixes everywhere, the Tansu ones on Tansu.
ANY_BROKER = {"tansu": "on", "kafka": "on"}
TANSU_ONLY = {"tansu": "on", "kafka": "off"}
#: The literal in faust-streaming 0.15.3 ``AIOKafkaConsumerThread._create_worker_consumer``.
FAUST_FETCH_MAX_WAIT_MS = 1500


def product_settings(broker: EmbeddedBroker | KafkaBroker) -> Settings:
    """The settings a child of the product reads for `broker`: they decide the engine's fixes."""
    return load_settings(broker_env(broker))


def fix_state(records: Records, fix: Callable[[], None]) -> str:
    """``on`` if the worker that wrote `records` had applied `fix`, else ``off``."""
    return "on" if fix.__name__ in records[-1]["fixes"] else "off"


class Worker:
    """One `compat_app` child process in its own process group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.compat_app", *argv],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful stop (SIGTERM: Faust commits and leaves the group)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"worker ignored SIGTERM for {timeout} s:\n{self.logs()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


class Pipeline:
    """Topics, group and workers of one test: SOURCE -> compat_app -> SINK."""

    def __init__(self, broker: EmbeddedBroker | KafkaBroker, unique: str, log_dir: Path) -> None:
        settings = product_settings(broker)
        self.engine = resolve(settings).name
        self.tansu_fixes = tansu_fixes(settings)
        self.bootstrap = broker.bootstrap
        self.env = {
            **os.environ,
            **broker_env(broker),
            "MESSAGEHOOKS_DATA_DIR": str(log_dir / "data"),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
        self.app_id = f"compat-{unique}"
        self.source = f"compat.{unique}.source"
        self.sink = f"compat.{unique}.sink"
        self.log_dir = log_dir
        self.workers: list[Worker] = []
        asyncio.run(ensure_topics(self.bootstrap, [self.source, self.sink], partitions=PARTITIONS))

    def start_worker(self) -> Worker:
        argv = [self.app_id, self.source, self.sink, str(PARTITIONS)]
        worker = Worker(argv, self.env, self.log_dir / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def produce(self, ids: range, key: Callable[[int], str]) -> None:
        async def send_all() -> None:
            producer = make_producer(self.bootstrap)
            await producer.start()
            try:
                futures = [
                    await producer.send(self.source, json.dumps({"id": i}).encode(), key=key(i).encode())
                    for i in ids
                ]
                await asyncio.gather(*futures)
            finally:
                await producer.stop()

        asyncio.run(send_all())

    def wait_sink(
        self, done: Callable[[Records], bool], timeout: float, worker: Worker, *, must: bool = True
    ) -> Records:
        """Sink records from the beginning, polled until `done(records)` or `timeout` (then fail)."""
        records = asyncio.run(_read(self.bootstrap, self.sink, done, timeout, self.tansu_fixes))
        if must and not done(records):
            pytest.fail(f"sink incomplete after {timeout} s ({len(records)} records):\n{worker.logs()}")
        return records

    def sink_records(self) -> Records:
        """Every record of the sink (up to its true end offsets)."""
        return asyncio.run(_read(self.bootstrap, self.sink, None, 20.0, self.tansu_fixes))

    def committed_and_end(self) -> tuple[dict[int, int | None], dict[int, int]]:
        return asyncio.run(_committed_and_end(self.bootstrap, self.app_id, self.source, self.tansu_fixes))


def earliest_consumer(bootstrap: str) -> AIOKafkaConsumer:
    """A consumer whose first position, like `seek_to_beginning`, is the earliest offset.

    With aiokafka's default (latest), the reset that `assign` starts in the background can land
    after a `seek_to_beginning` and win: on Kafka a read "from the beginning" then began at the
    end when anything was awaited between the two (most reads of 3000 records returned none).
    """
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )


async def _read(
    bootstrap: str, topic: str, done: Callable[[Records], bool] | None, timeout: float, embedded: bool
) -> Records:
    consumer = earliest_consumer(bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await end_offsets(consumer, tps, embedded) if done is None else {}
        await consumer.seek_to_beginning(*tps)
        records: Records = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if done is not None and done(records):
                break
            if done is None and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                break
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend({**json.loads(r.value), "key": r.key.decode()} for r in batch)
        return records
    finally:
        await consumer.stop()


async def _committed_and_end(
    bootstrap: str, group: str, topic: str, embedded: bool
) -> tuple[dict[int, int | None], dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        consumer.assign(tps)
        ends = await end_offsets(consumer, tps, embedded)
        return committed, {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def _describe_group(bootstrap: str, group: str) -> Any:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.describe_consumer_groups([group])
    finally:
        await admin.close()


def ids_seen(records: Records) -> set[int]:
    return {r["id"] for r in records}


@pytest.fixture
def pipeline(broker: EmbeddedBroker | KafkaBroker, unique: str, tmp_path: Path) -> Iterator[Pipeline]:
    running = Pipeline(broker, unique, tmp_path)
    yield running
    for worker in running.workers:
        worker.kill()


def test_a_backlog_at_start_is_processed_exactly_once_across_a_graceful_restart(pipeline):
    """Faust start-up race: recovery resumed stream partitions before seeking, then cleared queues."""
    first, total = 500, 3000
    pipeline.produce(range(first), key=lambda i: f"k{i % 16}")
    worker = pipeline.start_worker()
    pipeline.wait_sink(lambda records: len(ids_seen(records)) >= first, 40, worker)
    worker.stop()

    # The second start recovers the table (the fetcher runs) with a backlog on every partition.
    pipeline.produce(range(first, total), key=lambda i: f"k{i % 16}")
    worker = pipeline.start_worker()
    # Unfixed, events are lost here: let the assertions below say which.
    pipeline.wait_sink(lambda records: len(ids_seen(records)) >= total, 30, worker, must=False)
    worker.stop()

    records = pipeline.sink_records()
    duplicates = {i: n for i, n in Counter(r["id"] for r in records).items() if n > 1}
    missing = set(range(total)) - ids_seen(records)
    assert (len(missing), len(duplicates)) == (0, 0), (sorted(missing)[:20], list(duplicates.items())[:20])
    committed, end = pipeline.committed_and_end()
    assert committed == end
    for fix in (
        patch_recovery_seek_before_resume,
        patch_flow_control_resume,
        patch_fetch_only_active_partitions,
    ):
        assert fix_state(records, fix) == ANY_BROKER[pipeline.engine], fix.__name__


async def test_a2_a_fetch_never_returns_records_of_paused_partitions(broker, unique, monkeypatch):
    """aiokafka read Faust's emptied live set of active partitions as "all": records were lost.

    In-process (the race window in a worker is milliseconds wide): a consumer with records
    buffered for a partition Faust has paused must not hand them out. The unpatched method does,
    on either engine: the bug is in the clients.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    unpatched: Callable[..., Any] = AIOKafkaConsumerThread._fetch_records
    # Restore the unpatched method after the test: the fix patches the class process-wide.
    monkeypatch.setattr(AIOKafkaConsumerThread, "_fetch_records", unpatched)
    patch_fetch_only_active_partitions()
    fixed: Callable[..., Any] = AIOKafkaConsumerThread._fetch_records
    bootstrap = broker.bootstrap
    topic = f"compat.{unique}.paused"
    await ensure_topics(bootstrap, [topic], partitions=1)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}")
    finally:
        await producer.stop()
    consumer = earliest_consumer(bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))
        await _buffer_from_start(consumer, tp)

        assert await fixed(thread, consumer, set(), timeout=0.2) == {}
        assert [r.offset for r in (await unpatched(thread, consumer, set(), timeout=0.2))[tp]] == [0]
        await _buffer_from_start(consumer, tp)
        assert [r.offset for r in (await fixed(thread, consumer, {tp}, timeout=5))[tp]] == [0]
    finally:
        await consumer.stop()


async def _buffer_from_start(consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
    """Seek to the start of `tp` and wait until the background fetcher has buffered its records."""
    await consumer.seek_to_beginning(tp)
    async with asyncio.timeout(10):
        while tp not in consumer._fetcher._records:
            await consumer._fetcher._create_fetch_waiter()


def test_b_a_gracefully_stopped_worker_leaves_its_group(pipeline):
    """Ghost member: aiokafka skips LeaveGroup in generation 0, Tansu's first; Kafka's first is 1."""
    worker = pipeline.start_worker()
    pipeline.produce(range(1), key=str)
    records = pipeline.wait_sink(lambda records: ids_seen(records) == {0}, 30, worker)
    worker.stop()
    # Tansu expires a silent member only when the next join runs into it: unfixed, the stopped
    # worker is still a member here, and the next worker waits for its session to run out.
    (group,) = asyncio.run(_describe_group(pipeline.bootstrap, pipeline.app_id))[0].groups
    state, members = group[2], group[5]  # (error_code, group, state, protocol_type, protocol, members)
    assert (state, members) == ("Empty", [])
    assert fix_state(records, patch_leave_group_generation_zero) == TANSU_ONLY[pipeline.engine]

    worker = pipeline.start_worker()
    pipeline.produce(range(1, 2), key=str)
    pipeline.wait_sink(lambda records: 1 in ids_seen(records), 20, worker)


def test_c_table_recovery_restores_every_update(pipeline):
    """ListOffsets(LATEST) on Tansu ends at the last batch's base offset: recovery stopped early."""
    updates = 500
    pipeline.produce(range(updates), key=lambda i: "counter")
    worker = pipeline.start_worker()
    pipeline.wait_sink(lambda records: any(r["count"] == updates for r in records), 40, worker)
    worker.stop()

    worker = pipeline.start_worker()
    pipeline.produce(range(updates, updates + 1), key=lambda i: "counter")
    records = pipeline.wait_sink(lambda records: updates in ids_seen(records), 40, worker)
    after_restart = [r for r in records if r["id"] == updates]
    assert [r["count"] for r in after_restart] == [updates + 1]
    assert fix_state(after_restart, patch_changelog_highwaters) == TANSU_ONLY[pipeline.engine]


def test_d_the_worker_consumer_long_polls_briefly_on_tansu_only(pipeline):
    """Faust hard-codes fetch_max_wait_ms=1500; Tansu then delivers to an idle stream late."""
    worker = pipeline.start_worker()
    pipeline.produce(range(1), key=str)
    records = pipeline.wait_sink(lambda records: bool(records), 30, worker)
    expected_wait = {"tansu": EMBEDDED_FETCH_MAX_WAIT_MS, "kafka": FAUST_FETCH_MAX_WAIT_MS}
    assert records[0]["fetch_max_wait_ms"] == expected_wait[pipeline.engine]
    assert fix_state(records, patch_fetch_max_wait) == TANSU_ONLY[pipeline.engine]


async def test_e_end_offsets_probe_the_true_end_on_tansu_only(broker, unique):
    """Tansu answers ListOffsets(LATEST) with the last batch's base offset + 1, Kafka with its end.

    Two batches of ten records: the true end is 20. `end_offsets`, switched by the engine as in
    the product, answers 20 on both: by a Fetch on Tansu, by aiokafka's own answer on Kafka.
    """
    settings = product_settings(broker)
    engine = resolve(settings).name
    topic = f"compat.{unique}.ends"
    await ensure_topics(broker.bootstrap, [topic], partitions=1)
    producer = make_producer(broker.bootstrap)
    await producer.start()
    try:
        for _ in range(2):
            batch = producer.create_batch()
            for i in range(10):
                batch.append(key=None, value=str(i).encode(), timestamp=None)
            batch.close()
            await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        listed = await consumer.end_offsets([tp])
        switched = await end_offsets(consumer, [tp], tansu_fixes(settings))
    finally:
        await consumer.stop()
    assert listed == {tp: {"tansu": 11, "kafka": 20}[engine]}
    assert switched == {tp: 20}
    assert ("on" if tansu_fixes(settings) else "off") == TANSU_ONLY[engine]


async def test_f_a_topic_faust_created_can_be_partitioned_at_once(broker, unique, monkeypatch):
    """A changelog record is partitioned from the producer's metadata without waiting for it.

    Faust's producer, having sent to one topic, creates another. Unpatched, its metadata update
    asks for the first topic only: Kafka answers with that one, so partitioning a key of the new
    topic fails as the stream worker's agent did (there Kafka's lagging metadata did it, a race);
    Tansu answers with every topic. Fixed, the creation returns once the producer knows the new
    topic's partitions, on either engine.
    """
    import faust
    from faust.transport.drivers.aiokafka import Producer

    settings = product_settings(broker)
    engine = resolve(settings).name
    # Restore the unpatched method after the test: the fix patches the class process-wide.
    monkeypatch.setattr(Producer, "create_topic", Producer.create_topic)
    app = faust.App(f"compat-{unique}", broker=f"kafka://{broker.bootstrap}", web_enabled=False)
    sent_to, first, second = f"compat.{unique}.sent", f"compat.{unique}.new1", f"compat.{unique}.new2"
    await ensure_topics(broker.bootstrap, [sent_to], partitions=1)
    await app.producer.start()
    try:
        await app.producer.send_and_wait(sent_to, b"k", b"{}", None, None, None)
        await app.producer.create_topic(first, 3, 1)
        assert _partitions_known(app.producer, first) == {"tansu": True, "kafka": False}[engine]
        patch_create_topic_waits_for_metadata()
        await app.producer.create_topic(second, 3, 1)
        assert _partitions_known(app.producer, second)
    finally:
        await app.producer.stop()
    assert patch_create_topic_waits_for_metadata in faust_fixes(embedded=tansu_fixes(settings))  # both


def _partitions_known(producer: Any, topic: str) -> bool:
    """Whether Faust's producer can partition a key of `topic` now (from the metadata it has)."""
    try:
        producer.key_partition(topic, b"k")
    except TypeError:  # aiokafka: list(None), no partitions known for the topic
        return False
    return True
