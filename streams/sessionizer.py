"""One worker's sessionizing over a Faust app: the I/O around the pure state machines.

The rules live in pure modules (`streams.sessions.step`, `streams.idle.Activity` and `sweep`,
`streams.resume`); this class decodes, asks them, sends what they emit and writes the states,
and streams/agents.py registers its methods as the app's agent, timers and signal receivers.

Outputs before state: a batch of events is processed, its pairs, conversations and dead
letters are sent and their acks (acks=all) awaited, and only then are the chats' new states
written to the table (its changelog). A crash can thus leave outputs whose state change was
not recorded (they are re-emitted, with the same ids, and the dataset sink drops the repeats),
but never a recorded state change whose outputs were lost (docs/dataset.md). With the opt-in
exactly_once (Apache Kafka), outputs, states and offsets of a partition commit in one Kafka
transaction, so a read_committed reader sees no repeat either (docs/streams.md).
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from messagehooks.deadletter import encode_original
from messagehooks.metrics import Gauges
from messagehooks.schema import DeadLetterRecord, decode_message, encode_dead_letter
from messagehooks.settings import Settings
from streams.codec import CHAT_STATE_CODEC, encode_record
from streams.idle import Activity, partition_of, retention, sweep
from streams.patches import (
    commit_transactions,
    committed_offsets,
    serialize_commits,
    track_table_topic,
    transaction_source,
    use_serializers,
)
from streams.resume import TableReader, read_open_tails, replay
from streams.sessions import ChatState, Output, SessionSettings, is_open, step

logger = logging.getLogger(__name__)

DEAD_LETTER_KEY = b"streams"

END_OFFSETS_TIMEOUT = 5.0
"""Seconds the idle sweep waits for fresh end offsets (it holds the state lock meanwhile)."""

Sent = Any  # an awaitable of aiokafka's RecordMetadata (faust types it loosely)


@dataclass
class StreamStats:
    """Counts of one worker's life, logged periodically and exposed as Prometheus counters."""

    messages: int = 0
    duplicates: int = 0
    late: int = 0
    pairs: int = 0
    conversations: int = 0
    dead_letters: int = 0
    gauges: Gauges = field(default_factory=Gauges)


class Sessionizer:
    """The chats table, the output topics and the rules, for one Faust app.

    One chat's state lives in the `chats` table (changelog-backed), keyed by chat id bytes. The
    table uses Kafka's default partitioner on the same key bytes as the `messages` topic, so
    each chat's changelog partition is its source partition, and the idle timer may write it too.
    States are updated in place: a batch, the resume and the idle timer take turns (`lock`), so
    that none writes a state holding another's changes whose outputs are not acknowledged yet.
    """

    def __init__(self, app: faust.App, settings: Settings, read_table: TableReader) -> None:
        self.app = app
        self.settings = settings
        self.read_table = read_table
        self.stats = StreamStats()
        self.session_settings = SessionSettings(
            conversation_gap=settings.conversation_gap,
            allowed_lateness=settings.allowed_lateness,
            context_turns=settings.context_turns,
        )
        self.retention = retention(self.session_settings)
        self.source = settings.topics.messages
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.pairs_topic = app.topic(settings.topics.turn_pairs, **raw)
        self.conversations_topic = app.topic(settings.topics.conversations, **raw)
        self.dead_letter_topic = app.topic(settings.topics.dead_letter, **raw)
        # Any: the faust stubs do not declare the table's serializer attributes.
        self.chats: Any = app.Table("chats", partitions=settings.partitions, use_partitioner=True)
        use_serializers(self.chats, key="raw", value=CHAT_STATE_CODEC)
        self.activity = Activity(settings.partitions, started=time.monotonic())
        self.resumed: set[int] = set()
        self.lock = asyncio.Lock()
        # With exactly_once, Faust commits a transaction only between two updates, never between
        # an update's outputs and its states (kafka_compat).
        serialize_commits(app, self.lock)

    # --- the agent ---------------------------------------------------------------------------

    async def process_batch(self, batch: Iterable[faust.EventT[bytes]]) -> None:
        """Step each event's chat, await the outputs' acks, then write the changed states."""
        changed: dict[bytes, ChatState] = {}
        sent: list[Sent] = []
        async with self.lock:
            for event in batch:
                # With exactly_once, its outputs join the transaction of its partition.
                with transaction_source(TopicPartition(event.message.topic, event.message.partition)):
                    sent.extend(await self.process(event, changed))
            await asyncio.gather(*sent)  # outputs durable before the state records them
            now = time.monotonic()
            for key, state in changed.items():
                self.chats[key] = state
                self.activity.seen(key, now)

    async def process(self, event: faust.EventT[bytes], changed: dict[bytes, ChatState]) -> list[Sent]:
        """Step one event onto its chat's state in `changed`; the sends of what it emitted."""
        self.activity.process(event.message.partition, event.message.offset)
        try:
            message = decode_message(event.value)
        except msgspec.MsgspecError as exc:
            return [await self.dead_letter(event, "undecodable_record", str(exc))]
        key = message.chat_id.encode()
        try:
            state, out = step(changed.get(key) or self.chats.get(key), message, self.session_settings)
        except ValueError as exc:
            return [await self.dead_letter(event, "processing_error", str(exc))]
        self.stats.messages += 1
        if out.duplicate:
            self.stats.duplicates += 1
            return []
        if out.late:
            self.stats.late += 1
            logger.warning(
                "late message not paired",
                extra={"chat_id": message.chat_id, "message_id": message.message_id},
            )
            return []
        changed[key] = state
        return await self.emit(key, out)

    async def emit(self, key: bytes, out: Output) -> list[Sent]:
        masked = self.settings.mask_topics  # the subscriber topics carry masked text (docs/topics.md)
        sent = [
            await self.pairs_topic.send(key=key, value=encode_record(pair, masked=masked))
            for pair in out.pairs
        ]
        for conversation in out.conversations:
            value = encode_record(conversation, masked=masked)
            sent.append(await self.conversations_topic.send(key=key, value=value))
        self.stats.pairs += len(out.pairs)
        self.stats.conversations += len(out.conversations)
        return sent

    async def dead_letter(self, event: faust.EventT[bytes], reason: str, detail: str) -> Sent:
        self.stats.dead_letters += 1
        message = event.message
        logger.warning(
            "dead-lettered a record",
            extra={
                "reason": reason,
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
            },
        )
        original = encode_original(bytes(event.value or b""))
        record = DeadLetterRecord(
            reason=reason,
            detail=detail[:500],
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            received_at=time.time(),
            original_encoding=original["original_encoding"],
            original=original["original"],
        )
        return await self.dead_letter_topic.send(key=DEAD_LETTER_KEY, value=encode_dead_letter(record))

    # --- partitions ----------------------------------------------------------------------------

    def partition_of(self, key: bytes) -> int:
        return partition_of(key, self.settings.partitions)

    def owned_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.source}

    async def assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """A new assignment: idleness and positions by `Activity`; the changelog in metadata."""
        self.activity.assign({tp.partition for tp in assigned if tp.topic == self.source}, time.monotonic())
        # Every state write needs an assignment: make sure the producer can place them first.
        changelog = self.chats.changelog_topic.get_topic_name()
        try:
            await track_table_topic(self.app.producer, changelog)
        except KafkaError as exc:  # the next assignment tries again
            logger.warning("no metadata for the changelog %s yet: %s", changelog, exc)

    async def commit_outside_events(self, partitions: set[int]) -> None:
        # With exactly_once, what the timer or a resume emitted has no offset for Faust to
        # commit with: commit those partitions' transactions now (kafka_compat).
        if self.app.in_transaction and partitions:
            sources = [TopicPartition(self.source, p) for p in sorted(partitions)]
            await commit_transactions(self.app, sources)

    # --- resume ----------------------------------------------------------------------------------

    async def resume(self) -> None:
        """Rebuild the open conversations of partitions not resumed yet (streams/resume.py).

        Runs after the changelog recovery and before the streams resume: no message of a
        resumed chat is processed before its open conversation is rebuilt.
        """
        todo = self.owned_partitions() - self.resumed
        if not todo:
            return
        try:
            tails = await asyncio.to_thread(
                read_open_tails, self.read_table, conversation_gap=self.settings.conversation_gap
            )
        except Exception as exc:  # an unreadable dataset must not stop the stream
            logger.error("could not read the messages table to resume open conversations: %s", exc)
            return
        rebuilt: dict[bytes, ChatState] = {}
        sent: list[Sent] = []
        async with self.lock:
            for tail in tails:
                key = tail.chat_id.encode()
                if self.partition_of(key) not in todo:
                    continue
                rebuilt[key], outputs = replay(self.chats.get(key), tail, self.session_settings)
                with transaction_source(TopicPartition(self.source, self.partition_of(key))):
                    for out in outputs:
                        sent.extend(await self.emit(key, out))
            await asyncio.gather(*sent)  # outputs durable before the states record them
            for key, state in rebuilt.items():
                self.chats[key] = state
            await self.commit_outside_events({self.partition_of(key) for key in rebuilt})
        self.resumed.update(todo)
        logger.info(
            "resumed open conversations from the messages table",
            extra={"chats": len(rebuilt), "partitions": sorted(todo)},
        )

    # --- the idle timer --------------------------------------------------------------------------

    async def close_idle(self) -> None:
        """Flush chats idle on this worker, of partitions it owns and has read to the end.

        Nothing closes while a rebalance runs: the assignment is about to change and the stream
        is paused, so "idle" and "caught up" mean nothing until it is over. Idleness is taken as
        of when the end offsets were asked for: a pause of the worker after that (SIGSTOP, a
        long GC) must not make chats look idle against offsets from before.
        """
        async with self.lock:
            checked_at = time.monotonic()
            ready = set() if self.app.rebalancing else await self.caught_up_now()
            if not ready:
                return

            def owns(key: bytes) -> bool:
                partition = self.partition_of(key)
                return (
                    not self.app.rebalancing and partition in ready and partition in self.owned_partitions()
                )

            result = await sweep(
                self.chats,
                owns=owns,
                idle_seconds=lambda key: self.activity.idle_seconds(key, checked_at),
                emit=self.emit_acked,
                settings=self.session_settings,
                retention=self.retention,
                forget=self.activity.forget,
            )
            if result.closed or result.forgotten:
                await self.commit_outside_events(ready & self.owned_partitions())

    async def caught_up_now(self) -> set[int]:
        """The owned partitions read to the end offsets fetched from the broker now."""
        assigned = [tp for tp in self.app.assignor.assigned_actives() if tp.topic == self.source]
        if not assigned:
            return set()
        try:
            ends = await asyncio.wait_for(self.app.consumer.highwaters(*assigned), END_OFFSETS_TIMEOUT)
        except Exception as exc:  # any broker error: close nothing this round
            logger.warning("could not fetch end offsets; no idle close this round: %s", exc)
            return set()
        committed = committed_offsets(self.app.consumer)
        return self.activity.caught_up(
            {tp.partition: ends.get(tp) for tp in assigned},
            {tp.partition: committed.get(tp) for tp in assigned},
        )

    async def emit_acked(self, key: bytes, out: Output) -> None:
        with transaction_source(TopicPartition(self.source, self.partition_of(key))):
            await asyncio.gather(*await self.emit(key, out))

    # --- observability ---------------------------------------------------------------------------

    def log_stats(self) -> None:
        logger.info("stream stats", extra={k: v for k, v in vars(self.stats).items() if k != "gauges"})

    def refresh_gauges(self) -> None:
        states = list(self.chats.values())
        gauges = self.stats.gauges
        gauges.values["open_conversations"] = float(sum(is_open(state) for state in states))
        gauges.values["chats"] = float(len(states))
        lag: dict[tuple[str, int], float] = {}
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != self.source:
                continue
            try:
                highwater = self.app.consumer.highwater(tp)
            except (AssertionError, KeyError, AttributeError):
                continue
            if highwater is not None:
                lag[(tp.topic, tp.partition)] = float(self.activity.lag(tp.partition, highwater))
        gauges.lag = lag
