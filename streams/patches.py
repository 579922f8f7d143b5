"""Client-side fixes for the embedded Tansu broker and for Faust, kept in one place.

Each fix names the upstream behaviour it works around, so it can be dropped when upstream
fixes it. Which fix is needed on which engine is shown by tests/integration/test_kafka_compat.py
(table in docs/engines.md).
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Container, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

logger = logging.getLogger(__name__)


async def track_table_topic(producer: Any, topic: str) -> None:
    """Keep `topic` (a table's changelog) in the Faust producer's metadata from now on.

    faust-streaming 0.15.3 ``Producer.key_partition``, which a table with ``use_partitioner``
    calls on every write, reads aiokafka's cached metadata and never fetches it. aiokafka 0.14.0
    caches every topic until the producer sends to one the cache lacks (an output topic created
    after the worker started); from then on it refreshes only the topics asked for by name, and
    the changelog dropped out: every state write failed with TypeError, the agent crashed, and
    the idle timer's write crashed the worker (any broker; tests/streams/test_late_topics.py).

    Args:
        producer: the Faust app's producer (``app.producer``), started.
        topic: the topic to track.
    """
    aiokafka_producer = producer._ensure_producer()  # faust 0.15.3 internal
    await aiokafka_producer.client.add_topic(topic)  # refreshed with the others from now on
    await aiokafka_producer.partitions_for(topic)  # returns once the topic is in the cache


# --- Faust / aiokafka patches -------------------------------------------------------------------
# Pinned in pyproject.toml: faust-streaming 0.15.3, mode-streaming 0.7.1, aiokafka 0.14.0. Each
# patch replaces or wraps one private function of those versions; re-check them on upgrade.

#: Faust hard-codes 1500 ms; Tansu re-checks a waiting Fetch only at half of it.
EMBEDDED_FETCH_MAX_WAIT_MS = 100

_PATCHED = "_messagehooks_fix"


def apply_faust_fixes(*, embedded: bool, transactions: bool = False) -> None:
    """Patch Faust and aiokafka in this process before the Faust app starts (idempotent).

    Args:
        embedded: True on the embedded Tansu broker; adds the Tansu-only fixes to the Faust
            start-up race fix, which applies to any broker.
        transactions: True with ``processing_guarantee="exactly_once"`` (Apache Kafka only).
    """
    for fix in faust_fixes(embedded=embedded):
        fix()
    if transactions:
        apply_transaction_fixes()


def faust_fixes(*, embedded: bool) -> tuple[Callable[[], None], ...]:
    """The patches `apply_faust_fixes` installs: the Faust/aiokafka ones, plus Tansu's if `embedded`."""
    any_broker = (
        patch_recovery_seek_before_resume,
        patch_flow_control_resume,
        patch_fetch_only_active_partitions,
        patch_create_topic_waits_for_metadata,
    )
    tansu_only = (patch_leave_group_generation_zero, patch_changelog_highwaters, patch_fetch_max_wait)
    return any_broker + tansu_only if embedded else any_broker


def _is_patched(owner: object, name: str, marker: str = _PATCHED) -> bool:
    return bool(getattr(getattr(owner, name), marker, False))


def _install(owner: object, name: str, replacement: Callable[..., Any], marker: str = _PATCHED) -> None:
    setattr(replacement, marker, True)
    setattr(owner, name, replacement)
    logger.debug("patched %s.%s", getattr(owner, "__qualname__", owner), name)


def patch_recovery_seek_before_resume() -> None:
    """Seek stream partitions to their committed offsets *before* resuming them.

    faust-streaming 0.15.3 ``Recovery.on_recovery_completed`` and ``Recovery._resume_streams``
    resume the stream partitions, then await ``consumer.perform_seek()``. After a table recovery
    the fetcher is already running, so during that await it fetches stream records from the old
    position and hands them to the agents (marking them read); the seek then rewinds, and those
    records are dropped by the queue clear (see `patch_flow_control_resume`) or delivered twice,
    which corrupts the ack bookkeeping. These copies of the 0.15.3 methods only swap the two steps.
    """
    from faust.tables.recovery import Recovery

    if _is_patched(Recovery, "on_recovery_completed"):
        return

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    _install(Recovery, "on_recovery_completed", on_recovery_completed)
    _install(Recovery, "_resume_streams", _resume_streams)


def patch_flow_control_resume() -> None:
    """Let ``FlowControlEvent.resume()`` clear the agents' queues only if flow was suspended.

    mode-streaming 0.7.1 ``FlowControlEvent.resume`` always clears every managed queue, and Faust
    0.15.3 calls it at the end of recovery although flow has been running since the changelog
    replay: events already fetched (and marked read) are thrown away. Clearing belongs to a real
    suspend/resume cycle (a rebalance), which still clears as before.
    """
    from mode.utils.queues import FlowControlEvent

    if _is_patched(FlowControlEvent, "resume"):
        return

    def resume(self: Any) -> None:
        was_suspended = self._suspend.is_set()
        self._suspend.clear()
        self._resume.set()
        if was_suspended:
            self.clear()

    _install(FlowControlEvent, "resume", resume)


class _NeverEmpty:
    """Membership view of Faust's live set of active partitions that is never falsy."""

    def __init__(self, partitions: Container[TopicPartition]) -> None:
        self._partitions = partitions

    def __contains__(self, tp: object) -> bool:
        return tp in self._partitions

    def __bool__(self) -> bool:
        return True


def patch_fetch_only_active_partitions() -> None:
    """Never let an in-flight fetch return records of paused partitions.

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._fetch_records`` hands its *live* set of
    active partitions to aiokafka 0.14.0 ``Fetcher.fetched_records``, which reads an empty
    set as "every partition". When recovery pauses the changelog partitions while a fetch waits,
    the set empties and the fetch returns (and moves the position past) records of the still
    paused stream partitions; Faust's ``getmany`` then drops them as inactive. A partition with
    a committed offset is rewound by the seek at the end of recovery, but one without is not:
    its records are lost. The view keeps the live membership and is never empty.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _is_patched(AIOKafkaConsumerThread, "_fetch_records"):
        return
    original: Callable[..., Awaitable[Any]] = AIOKafkaConsumerThread._fetch_records

    async def _fetch_records(
        self: Any,
        consumer: AIOKafkaConsumer,
        active_partitions: Container[TopicPartition] | None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        # None (a client-only app) still means every partition.
        view = None if active_partitions is None else _NeverEmpty(active_partitions)
        return await original(self, consumer, view, timeout=timeout, max_records=max_records)

    _install(AIOKafkaConsumerThread, "_fetch_records", _fetch_records)


def patch_create_topic_waits_for_metadata() -> None:
    """Return from Faust's topic creation only once its producer knows the topic's partitions.

    faust-streaming 0.15.3 ``Producer.create_topic`` creates the topic, then forces one metadata
    update of aiokafka's producer; that update asks only for the topics the producer has sent to
    (all topics while there is none), and Apache Kafka's answer may not list a topic created a
    moment ago (the broker's metadata lags its controller under load). The producer then keeps
    that metadata for minutes, but a table's changelog record is partitioned at once from it
    (``key_partition``, no waiting): the worker's agent crashed at its first state write
    ("'NoneType' object is not iterable") and the worker went on running, processing nothing.
    aiokafka's ``_wait_on_metadata`` adds the topic to the producer's list and waits for it.
    """
    from faust.transport.drivers.aiokafka import Producer

    if _is_patched(Producer, "create_topic"):
        return
    original: Callable[..., Awaitable[None]] = Producer.create_topic

    async def create_topic(self: Any, topic: str, *args: Any, **kwargs: Any) -> None:
        await original(self, topic, *args, **kwargs)
        if self.app.conf.topic_allow_declare:
            await self._ensure_producer().client._wait_on_metadata(topic)

    _install(Producer, "create_topic", create_topic)


def patch_leave_group_generation_zero() -> None:
    """Send LeaveGroup on a graceful stop in generation 0 too (embedded broker only).

    aiokafka 0.14.0 ``GroupCoordinator._maybe_leave_group`` (group_coordinator.py) leaves only
    when ``generation > 0``; Tansu numbers a group's first generation 0, so the first member of
    every group never leaves and the next member waits behind the ghost (111 s with defaults).
    """
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.group import LeaveGroupRequest

    if _is_patched(GroupCoordinator, "_maybe_leave_group"):
        return

    async def _maybe_leave_group(self: Any) -> None:
        if self.generation >= 0 and self._group_instance_id is None:
            request = LeaveGroupRequest(self.group_id, self.member_id)
            try:
                await self._send_req(request)
            except KafkaError as err:
                logger.error("LeaveGroup request failed: %s", err)
            else:
                logger.info("LeaveGroup request succeeded")
        self.reset_generation()

    _install(GroupCoordinator, "_maybe_leave_group", _maybe_leave_group)


def patch_changelog_highwaters() -> None:
    """Take Faust's changelog high-water marks from a Fetch response (embedded broker only).

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._highwaters`` returns aiokafka's
    ``end_offsets()`` (ListOffsets LATEST), which Tansu 0.6 answers with the base offset of the
    last batch + 1. Table recovery stops at that mark, so table values go backwards after a
    restart. The patched method corrects each non-empty partition with `fetch_highwaters`.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _is_patched(AIOKafkaConsumerThread, "_highwaters"):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        reported: dict[TopicPartition, int] = dict(await original(self, partitions))
        if self.consumer.in_transaction:
            return reported  # last stable offsets, not from ListOffsets
        return await fetch_highwaters(self._ensure_consumer(), reported)

    _install(AIOKafkaConsumerThread, "_highwaters", _highwaters)


async def fetch_highwaters(
    consumer: AIOKafkaConsumer, reported: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Correct ListOffsets(LATEST) answers with the high watermark of a one-off Fetch.

    Unlike `end_offsets`, this leaves the consumer's positions and fetcher alone: it sends its
    own Fetch request, starting inside the last batch (``reported - 1``), to each leader.
    A partition whose leader is unknown or whose fetch fails keeps its reported offset.

    Args:
        consumer: a started consumer (its client and metadata are used).
        reported: end offsets as answered by ListOffsets(LATEST).

    Returns:
        The end offset (last offset + 1) of every partition in `reported`.
    """
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.fetch import FetchRequest

    client = consumer._client
    by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
    for tp, offset in reported.items():
        leader = client.cluster.leader_for_partition(tp)
        if offset > 0 and leader is not None and leader >= 0:
            by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append((tp.partition, offset - 1, 1))
    corrected = dict(reported)
    unanswered = {tp for tp, offset in reported.items() if offset > 0}
    for leader, topics in by_leader.items():
        # Tansu answers a Fetch with max_wait 0 with no partitions at all; the records exist (the
        # fetch starts inside the last batch), so a short max_wait returns at once.
        request = FetchRequest(100, 1, 1, 0, list(topics.items()))
        try:
            response = await client.send(leader, request)
        except KafkaError as exc:
            logger.warning("high-watermark fetch from node %s failed: %s", leader, exc)
            continue
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                tp = TopicPartition(topic, partition)
                unanswered.discard(tp)
                if error_code == 0 and highwater >= corrected[tp]:
                    corrected[tp] = highwater
                elif error_code != 0:
                    logger.warning("high-watermark fetch of %s: error code %s", tp, error_code)
    if unanswered:
        logger.warning("no high watermark for %s; kept ListOffsets' answer", sorted(unanswered))
    return corrected


def patch_fetch_max_wait() -> None:
    """Use `EMBEDDED_FETCH_MAX_WAIT_MS` for Faust's consumer (embedded broker only).

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._create_worker_consumer`` hard-codes
    ``fetch_max_wait_ms=1500``; Tansu re-checks a waiting Fetch at half of it, so an idle stream
    saw a new record ~330 ms late at p50 (18 ms at 100 ms). aiokafka hands the value to its
    fetcher at ``start()``, so setting it on the fresh consumer is enough.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _is_patched(AIOKafkaConsumerThread, "_create_worker_consumer"):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer = original(self, transport)
        consumer._fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS
        return consumer

    _install(AIOKafkaConsumerThread, "_create_worker_consumer", _create_worker_consumer)


# --- exactly_once (Kafka transactions, Apache Kafka only) --------------------------------------
# Faust 0.15.3's exactly_once commits each source partition's transaction (outputs, table
# writes, consumed offsets) every commit interval. Four gaps made it fail the kill -9 tests
# (docs/streams.md "exactly_once on Apache Kafka"); each patch below closes one.

_TRANSACTION_SOURCE: ContextVar[TopicPartition | None] = ContextVar(
    "messagehooks_transaction_source", default=None
)
_COMMIT_LOCKS: "weakref.WeakKeyDictionary[Any, asyncio.Lock]" = weakref.WeakKeyDictionary()
_UNSENT = "_messagehooks_unsent"
_EOS_PATCHED = "_messagehooks_eos_fix"


def apply_transaction_fixes() -> None:
    """The patches `apply_faust_fixes` adds for ``processing_guarantee="exactly_once"``."""
    patch_transactional_outputs()
    patch_track_unsent_records()
    patch_commit_after_updates()
    patch_fresh_stable_offsets()


@contextmanager
def transaction_source(source: TopicPartition) -> Iterator[None]:
    """Put what is sent inside into the open transaction of the source partition `source`."""
    token = _TRANSACTION_SOURCE.set(source)
    try:
        yield
    finally:
        _TRANSACTION_SOURCE.reset(token)


def transactional_id_of(app: Any, source: TopicPartition) -> str:
    """Faust's transactional id of a source partition: ``{app id}-{topic group}-{partition}``."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(source.topic)}-{source.partition}"


def serialize_commits(app: Any, lock: asyncio.Lock) -> None:
    """Make Faust's transaction commits of `app` wait for `lock` (held while states change)."""
    _COMMIT_LOCKS[app] = lock


def patch_transactional_outputs() -> None:
    """Send records made under `transaction_source` in that source partition's transaction.

    faust-streaming 0.15.3 ``TransactionManager.send`` picks the transactional producer from
    the *destination*: the key's partition in the destination topic and that topic's group.
    A topic the app does not consume has neither on Apache Kafka (the consumer's metadata lists
    only its subscriptions), so the record goes through the plain producer, outside any
    transaction: a crash aborts the state change while its output stays. Sends without a
    source (the table's changelog, copartitioned with the source) keep Faust's routing.
    """
    from faust.transport.consumer import TransactionManager

    if _is_patched(TransactionManager, "send", _EOS_PATCHED):
        return
    original = TransactionManager.send

    async def send(
        self: Any,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        source = _TRANSACTION_SOURCE.get()
        if source is None:
            return await original(self, topic, key, value, partition, timestamp, headers)
        tid = transactional_id_of(self.app, source)
        return await self.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=tid
        )

    _install(TransactionManager, "send", send, _EOS_PATCHED)


def patch_track_unsent_records() -> None:
    """Remember every record put in Faust's send buffer until Kafka acknowledges it.

    A table write (``table[key] = value``) only queues its changelog record; faust-streaming
    0.15.3 commits a transaction without waiting for that queue, so the write could land in
    the next transaction, after the offsets of its message were committed. `drain` awaits them.
    """
    from faust.transport.producer import ProducerBuffer

    if _is_patched(ProducerBuffer, "put", _EOS_PATCHED):
        return
    original = ProducerBuffer.put

    def put(self: Any, fut: Any) -> None:
        unsent: set[Any] = self.__dict__.setdefault(_UNSENT, set())
        unsent.add(fut)
        fut.add_done_callback(unsent.discard)
        original(self, fut)

    _install(ProducerBuffer, "put", put, _EOS_PATCHED)


async def drain(app: Any) -> None:
    """Wait until every record queued in `app`'s send buffer is acknowledged by Kafka."""
    unsent: set[Any] = app.producer.buffer.__dict__.get(_UNSENT, set())
    while unsent:
        await asyncio.gather(*list(unsent))


def patch_commit_after_updates() -> None:
    """Commit a transaction only between state updates, and with all its records in it.

    faust-streaming 0.15.3 commits on a timer, whatever the agents are doing: a commit between
    an agent's outputs and its table writes made the outputs durable without the state that
    records them, and after a kill -9 they were emitted again (measured: 5 pairs and 1
    conversation twice on the topics). The commit now takes the lock given to
    `serialize_commits` and first drains the send buffer.
    """
    from faust.transport.consumer import TransactionManager

    if _is_patched(TransactionManager, "commit", _EOS_PATCHED):
        return
    original = TransactionManager.commit

    async def commit(
        self: Any, offsets: Mapping[TopicPartition, int], start_new_transaction: bool = True
    ) -> bool:
        lock = _COMMIT_LOCKS.get(self.app)
        async with lock if lock is not None else contextlib.nullcontext():
            await drain(self.app)
            result: bool = await original(self, offsets, start_new_transaction)
        return result

    _install(TransactionManager, "commit", commit, _EOS_PATCHED)


def patch_fresh_stable_offsets() -> None:
    """Ask the broker for end offsets (the last stable offsets) instead of the last fetch's.

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._highwaters`` returns, with transactions,
    the last stable offset remembered from the last Fetch response: stale after a pause, and
    None for a partition not fetched yet. A read_committed consumer's ListOffsets answers the
    last stable offset fresh, which the idle timer's "caught up" check needs.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if _is_patched(AIOKafkaConsumerThread, "_highwaters", _EOS_PATCHED):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        if not self.consumer.in_transaction:
            return await original(self, partitions)
        fresh: dict[TopicPartition, int] = await self._ensure_consumer().end_offsets(list(partitions))
        return fresh

    _install(AIOKafkaConsumerThread, "_highwaters", _highwaters, _EOS_PATCHED)


async def commit_transactions(app: Any, sources: Iterable[TopicPartition]) -> None:
    """Commit, and begin again, the open transactions of `sources` (without offsets).

    Call it holding the lock given to `serialize_commits`. Faust commits a partition's
    transaction only with new offsets of it: what the idle timer emits on a quiet partition
    would stay in an open transaction until Kafka aborts it on timeout. Committing outputs and
    states whose messages' offsets are not committed yet is safe: those messages, processed
    again, are duplicates to the committed state.
    """
    await drain(app)
    producer = app.producer
    for source in sources:
        tid = transactional_id_of(app, source)
        transaction = producer._transaction_producers.get(tid)  # faust 0.15.3 internal
        lock = producer._trn_locks.get(tid)
        if transaction is None or lock is None:
            continue  # revoked meanwhile: the new owner fences this transaction
        async with lock:
            await transaction.commit_transaction()
            await transaction.begin_transaction()
