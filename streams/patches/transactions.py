"""Fixes of Faust's exactly_once (Kafka transactions, Apache Kafka only).

Faust 0.15.3's exactly_once commits each source partition's transaction (outputs, table
writes, consumed offsets) every commit interval. Four gaps made it fail the kill -9 tests
(docs/streams.md "exactly_once on Apache Kafka"); each patch below closes one.
"""

import asyncio
import contextlib
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aiokafka import TopicPartition

from streams.patches.pins import install, is_patched

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

    if is_patched(TransactionManager, "send", _EOS_PATCHED):
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

    install(TransactionManager, "send", send, _EOS_PATCHED)


def patch_track_unsent_records() -> None:
    """Remember every record put in Faust's send buffer until Kafka acknowledges it.

    A table write (``table[key] = value``) only queues its changelog record; faust-streaming
    0.15.3 commits a transaction without waiting for that queue, so the write could land in
    the next transaction, after the offsets of its message were committed. `drain` awaits them.
    """
    from faust.transport.producer import ProducerBuffer

    if is_patched(ProducerBuffer, "put", _EOS_PATCHED):
        return
    original = ProducerBuffer.put

    def put(self: Any, fut: Any) -> None:
        unsent: set[Any] = self.__dict__.setdefault(_UNSENT, set())
        unsent.add(fut)
        fut.add_done_callback(unsent.discard)
        original(self, fut)

    install(ProducerBuffer, "put", put, _EOS_PATCHED)


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

    if is_patched(TransactionManager, "commit", _EOS_PATCHED):
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

    install(TransactionManager, "commit", commit, _EOS_PATCHED)


def patch_fresh_stable_offsets() -> None:
    """Ask the broker for end offsets (the last stable offsets) instead of the last fetch's.

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._highwaters`` returns, with transactions,
    the last stable offset remembered from the last Fetch response: stale after a pause, and
    None for a partition not fetched yet. A read_committed consumer's ListOffsets answers the
    last stable offset fresh, which the idle timer's "caught up" check needs.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if is_patched(AIOKafkaConsumerThread, "_highwaters", _EOS_PATCHED):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: list[TopicPartition]) -> Mapping[TopicPartition, int]:
        if not self.consumer.in_transaction:
            return await original(self, partitions)
        fresh: dict[TopicPartition, int] = await self._ensure_consumer().end_offsets(list(partitions))
        return fresh

    install(AIOKafkaConsumerThread, "_highwaters", _highwaters, _EOS_PATCHED)


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
