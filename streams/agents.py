"""Thin Faust agents: decode, call the pure state machine (streams/sessions.py), emit.

One chat's state lives in the `chats` table (changelog-backed), keyed by chat id bytes. The
table uses Kafka's default partitioner on the same key bytes as the `messages` topic, so each
chat's changelog partition is its source partition, and the idle timer may write it too.

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
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from messagehooks.deadletter import encode_original
from messagehooks.metrics import Gauges
from messagehooks.schema import DeadLetterRecord, decode_message, encode_dead_letter
from messagehooks.settings import Settings
from streams.codec import CHAT_STATE_CODEC, encode_record, register_codecs
from streams.idle import caught_up_partitions, next_offset, sweep
from streams.patches import (
    commit_transactions,
    serialize_commits,
    track_table_topic,
    transaction_source,
)
from streams.resume import read_open_tails, replay
from streams.sessions import ChatState, Output, SessionSettings, is_open, step

logger = logging.getLogger(__name__)

DEAD_LETTER_KEY = b"streams"
BATCH_MAX = 500
"""Events processed per batch: one round trip of output acks per batch, not per event."""
BATCH_WITHIN = 0.05
"""Seconds a batch waits to fill before it is processed (adds at most this to the delay)."""

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


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (as aiokafka and Java do)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def idle_check_interval(settings: Settings) -> float:
    """How often the wall-clock timer looks for idle chats: a quarter gap, 0.5-10 s."""
    return min(10.0, max(0.5, settings.conversation_gap / 4))


def register_agents(app: faust.App, settings: Settings) -> StreamStats:
    """Declare topics, the chats table, the sessionizing agent and the idle timer on `app`."""
    register_codecs()
    topics = settings.topics
    stats = StreamStats()
    session_settings = SessionSettings(
        conversation_gap=settings.conversation_gap,
        allowed_lateness=settings.allowed_lateness,
        context_turns=settings.context_turns,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    messages = app.topic(topics.messages, partitions=settings.partitions, **raw)
    pairs_topic = app.topic(topics.turn_pairs, **raw)
    conversations_topic = app.topic(topics.conversations, **raw)
    dead_letter_topic = app.topic(topics.dead_letter, **raw)
    # Any: the faust stubs do not declare the serializer attributes set below.
    chats: Any = app.Table(
        "chats",
        partitions=settings.partitions,
        use_partitioner=True,
    )
    # Table() takes no serializers: it derives "json" from the types, and builds its changelog
    # topic (which decodes records in recovery) with them at once. Set ours and rebuild it; the
    # store is created lazily from the same attributes.
    chats.key_serializer = "raw"
    chats.value_serializer = CHAT_STATE_CODEC
    chats.schema = faust.Schema(key_serializer="raw", value_serializer=CHAT_STATE_CODEC)
    chats.changelog_topic = chats._new_changelog_topic()  # faust 0.15.3 internal
    retention = 2 * settings.conversation_gap + settings.allowed_lateness
    # Wall-clock idleness is measured from when this worker last processed a chat's message (a
    # chat it recovered or resumed but has not seen yet counts from when it got the partition),
    # and a chat is only closed while its partition is caught up with end offsets fetched at the
    # sweep, so a restart, a backlog or a pause never closes a conversation whose next messages
    # are still waiting in Kafka (stream = batch; streams/idle.py).
    started = time.monotonic()
    last_seen: dict[bytes, float] = {}
    processed: dict[int, int] = {}
    assigned_at: dict[int, float] = {}
    resumed: set[int] = set()

    def owned_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topics.messages}

    async def caught_up_now() -> set[int]:
        assigned = [tp for tp in app.assignor.assigned_actives() if tp.topic == topics.messages]
        if not assigned:
            return set()
        try:
            ends = await asyncio.wait_for(app.consumer.highwaters(*assigned), END_OFFSETS_TIMEOUT)
        except Exception as exc:  # any broker error: close nothing this round
            logger.warning("could not fetch end offsets; no idle close this round: %s", exc)
            return set()
        committed = getattr(app.consumer, "_committed_offset", {})  # faust 0.15.3 internal
        positions = {
            tp.partition: next_offset(processed.get(tp.partition), committed.get(tp)) for tp in assigned
        }
        return caught_up_partitions(positions, {tp.partition: ends.get(tp) for tp in assigned})

    def idle_seconds(key: bytes, at: float) -> float:
        since = assigned_at.get(partition_of(key, settings.partitions), started)
        return at - max(last_seen.get(key, since), since)

    masked = settings.mask_topics  # the subscriber topics carry masked text (docs/topics.md)

    async def emit(key: bytes, out: Output) -> list[Sent]:
        sent = [
            await pairs_topic.send(key=key, value=encode_record(pair, masked=masked)) for pair in out.pairs
        ]
        for conversation in out.conversations:
            value = encode_record(conversation, masked=masked)
            sent.append(await conversations_topic.send(key=key, value=value))
        stats.pairs += len(out.pairs)
        stats.conversations += len(out.conversations)
        return sent

    async def dead_letter(event: faust.EventT[bytes], reason: str, detail: str) -> Sent:
        stats.dead_letters += 1
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
        return await dead_letter_topic.send(key=DEAD_LETTER_KEY, value=encode_dead_letter(record))

    # States are updated in place: a batch and the idle timer take turns, so that neither
    # writes a state holding the other's changes whose outputs are not acknowledged yet.
    state_lock = asyncio.Lock()
    # With exactly_once, Faust commits a transaction only between two updates, never between an
    # update's outputs and its states (kafka_compat).
    serialize_commits(app, state_lock)

    def source_of(key: bytes) -> TopicPartition:
        return TopicPartition(topics.messages, partition_of(key, settings.partitions))

    async def commit_outside_events(partitions: set[int]) -> None:
        # With exactly_once, what the timer or a resume emitted has no offset for Faust to
        # commit with: commit those partitions' transactions now (kafka_compat).
        if app.in_transaction and partitions:
            await commit_transactions(app, [TopicPartition(topics.messages, p) for p in sorted(partitions)])

    async def process(event: faust.EventT[bytes], changed: dict[bytes, ChatState]) -> list[Sent]:
        processed[event.message.partition] = event.message.offset
        try:
            message = decode_message(event.value)
        except msgspec.MsgspecError as exc:
            return [await dead_letter(event, "undecodable_record", str(exc))]
        key = message.chat_id.encode()
        try:
            state, out = step(changed.get(key) or chats.get(key), message, session_settings)
        except ValueError as exc:
            return [await dead_letter(event, "processing_error", str(exc))]
        stats.messages += 1
        if out.duplicate:
            stats.duplicates += 1
            return []
        if out.late:
            stats.late += 1
            logger.warning(
                "late message not paired",
                extra={"chat_id": message.chat_id, "message_id": message.message_id},
            )
            return []
        changed[key] = state
        return await emit(key, out)

    @app.agent(messages, name="sessionize-messages")
    async def sessionize_messages(stream: faust.StreamT[bytes]) -> None:
        # StreamT in faust 0.15.3 does not declare take_events (Stream implements it).
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            changed: dict[bytes, ChatState] = {}
            sent: list[Sent] = []
            async with state_lock:
                for event in batch:
                    # With exactly_once, its outputs join the transaction of its partition.
                    with transaction_source(TopicPartition(event.message.topic, event.message.partition)):
                        sent.extend(await process(event, changed))
                await asyncio.gather(*sent)  # outputs durable before the state records them
                now = time.monotonic()
                for key, state in changed.items():
                    chats[key] = state
                    last_seen[key] = now

    async def emit_acked(key: bytes, out: Output) -> None:
        with transaction_source(source_of(key)):
            await asyncio.gather(*await emit(key, out))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types receivers as taking *args
    async def track_assignment(_app: Any, assigned: Any, **_: Any) -> None:
        # A partition new to this worker: forget what was processed of it before it left (the
        # other owner went on), and count its chats' idleness from now.
        partitions = {tp.partition for tp in assigned if tp.topic == topics.messages}
        now = time.monotonic()
        for partition in partitions - set(assigned_at):
            processed.pop(partition, None)
            assigned_at[partition] = now
        for partition in set(assigned_at) - partitions:
            del assigned_at[partition]
            processed.pop(partition, None)
        # Every state write needs an assignment: make sure the producer can place them first.
        changelog = chats.changelog_topic.get_topic_name()
        try:
            await track_table_topic(app.producer, changelog)
        except KafkaError as exc:  # the next assignment tries again
            logger.warning("no metadata for the changelog %s yet: %s", changelog, exc)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types receivers as taking *args
    async def resume_open_chats(_app: Any, **_: Any) -> None:
        # Runs after the changelog recovery and before the streams resume: no message of a
        # resumed chat is processed before its open conversation is rebuilt (streams/resume.py).
        todo = owned_partitions() - resumed
        if not todo:
            return
        try:
            tails = await asyncio.to_thread(
                read_open_tails, settings.dataset_root, conversation_gap=settings.conversation_gap
            )
        except Exception as exc:  # an unreadable dataset must not stop the stream
            logger.error("could not read the messages table to resume open conversations: %s", exc)
            return
        rebuilt: dict[bytes, ChatState] = {}
        sent: list[Sent] = []
        async with state_lock:
            for tail in tails:
                key = tail.chat_id.encode()
                if partition_of(key, settings.partitions) not in todo:
                    continue
                rebuilt[key], outputs = replay(chats.get(key), tail, session_settings)
                with transaction_source(source_of(key)):
                    for out in outputs:
                        sent.extend(await emit(key, out))
            await asyncio.gather(*sent)  # outputs durable before the states record them
            for key, state in rebuilt.items():
                chats[key] = state
            await commit_outside_events({partition_of(key, settings.partitions) for key in rebuilt})
        resumed.update(todo)
        logger.info(
            "resumed open conversations from the messages table",
            extra={"chats": len(rebuilt), "partitions": sorted(todo)},
        )

    def forget(key: bytes) -> None:
        last_seen.pop(key, None)

    @app.timer(interval=idle_check_interval(settings))
    async def close_idle_chats() -> None:
        async with state_lock:
            # Nothing closes while a rebalance runs: the assignment is about to change and the
            # stream is paused, so "idle" and "caught up" mean nothing until it is over.
            # Idleness as of when the end offsets were asked for: a pause of the worker after
            # that (SIGSTOP, a long GC) must not make chats look idle against offsets from before.
            checked_at = time.monotonic()
            ready = set() if app.rebalancing else await caught_up_now()
            if not ready:
                return

            def owns(key: bytes) -> bool:
                partition = partition_of(key, settings.partitions)
                return not app.rebalancing and partition in ready and partition in owned_partitions()

            result = await sweep(
                chats,
                owns=owns,
                idle_seconds=lambda key: idle_seconds(key, checked_at),
                emit=emit_acked,
                settings=session_settings,
                retention=retention,
                forget=forget,
            )
            if result.closed or result.forgotten:
                await commit_outside_events(ready & owned_partitions())

    @app.timer(interval=30.0)
    async def log_stats() -> None:
        logger.info("stream stats", extra={k: v for k, v in vars(stats).items() if k != "gauges"})

    @app.timer(interval=5.0)
    async def refresh_gauges() -> None:
        states = list(chats.values())
        stats.gauges.values["open_conversations"] = float(sum(is_open(state) for state in states))
        stats.gauges.values["chats"] = float(len(states))
        lag: dict[tuple[str, int], float] = {}
        for tp in app.assignor.assigned_actives():
            if tp.topic != topics.messages:
                continue
            try:
                highwater = app.consumer.highwater(tp)
            except (AssertionError, KeyError, AttributeError):
                continue
            if highwater is not None:
                lag[(tp.topic, tp.partition)] = float(max(0, highwater - processed.get(tp.partition, -1) - 1))
        stats.gauges.lag = lag

    return stats
