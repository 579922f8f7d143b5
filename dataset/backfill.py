"""`messagehooks backfill`: rebuild the dataset tables in batch from recorded deliveries.

The input is the `raw` topic (every accepted body, as received), the `messages` topic, or a
JSONL file of bodies (the `replay` format, which `raw` records also satisfy). Messages are
re-derived with the ingest's own validation, flagged `late` in arrival order with the stream's
rule, and the rest go through `features.batch` — the stream's oracle — so a backfill of the
traffic a stream processed equals what the stream wrote (tests/integration/test_dataset.py).
Each table is overwritten in one commit: a new version, the old ones stay readable.
"""

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from dataset import store
from dataset.rows import conversation_row, is_late, masker, message_row, pair_row
from features.batch import build_dataset
from messagehooks.engines import tansu_fixes
from messagehooks.errors import ConfigError, InvalidPayload
from messagehooks.kafka import end_offsets, topic_partitions
from messagehooks.schema import Message, decode_message
from messagehooks.settings import Hook, Settings
from messagehooks.validation import parse_body

PROGRESS_EVERY = 10_000


@dataclass
class BackfillResult:
    """What a backfill read and wrote."""

    records: int = 0
    messages: int = 0
    duplicates: int = 0
    late: int = 0
    rejected: int = 0
    pairs: int = 0
    conversations: int = 0
    versions: dict[str, int] = field(default_factory=dict)


def messages_from_delivery(value: bytes, settings: Settings, *, line: int) -> tuple[list[Message], int]:
    """The messages of one recorded delivery, and how many of its messages the ingest rejects.

    `value` is a Landbot body, or an object with `body` and optional `headers`, `hook`,
    `received_at`, `request_id` (a `raw` topic record or a `replay` line).
    """
    item = orjson.loads(value)
    if not isinstance(item, dict):
        raise ValueError(f"line {line}: expected a JSON object, got {type(item).__name__}")
    if "messages" in item or "body" not in item:
        body, meta = value, {}
    else:
        inner = item["body"]
        body = inner.encode() if isinstance(inner, str) else orjson.dumps(inner)
        meta = item
    hook_name = str(meta.get("hook") or settings.hooks[0].name)
    hook = settings.hook(hook_name) or Hook(hook_name)
    try:
        parsed = parse_body(
            body,
            hook=hook,
            received_at=float(meta.get("received_at") or 0.0),
            request_id=str(meta.get("request_id") or f"backfill-{line}"),
            max_messages=max(settings.max_messages_per_request, 1),
            ids=settings.pseudonyms,
        )
    except InvalidPayload:
        return [], 1
    return parsed.messages, len(parsed.rejections)


def identity(message: Message) -> tuple[str, str]:
    """What makes a message unique, in the stream and in the tables: (chat id, message id)."""
    return message.chat_id, message.message_id


def late_ids(arrivals: Iterable[Message], allowed_lateness: float) -> set[tuple[str, str]]:
    """Identities of the messages the stream flags late, given the order they arrived in."""
    newest: dict[str, float] = {}
    late: set[tuple[str, str]] = set()
    seen: set[tuple[str, str]] = set()
    for message in arrivals:
        ident = identity(message)
        if ident in seen:
            continue  # a repeat: the stream judged the first delivery only
        seen.add(ident)
        ts = float(message.timestamp)
        if is_late(ts, newest.get(message.chat_id), allowed_lateness):
            late.add(ident)
        elif ts > newest.get(message.chat_id, float("-inf")):
            newest[message.chat_id] = ts
    return late


def backfill(
    settings: Settings,
    *,
    from_topic: str | None = None,
    from_file: Path | None = None,
    out: TextIO,
) -> BackfillResult:
    """Read every delivery, rebuild `messages`, `turn_pairs` and `conversations`, write them."""
    if (from_topic is None) == (from_file is None):
        raise ConfigError("backfill needs exactly one of --from-topic or --from-file")
    result = BackfillResult()
    started = time.monotonic()
    arrivals: list[Message] = []
    values = (
        _file_values(from_file) if from_file is not None else _topic_values(settings, str(from_topic), out)
    )
    is_messages_topic = from_topic == settings.topics.messages
    for line, value in enumerate(values, start=1):
        result.records += 1
        if is_messages_topic:
            arrivals.append(decode_message(value))
        else:
            messages, rejected = messages_from_delivery(value, settings, line=line)
            arrivals.extend(messages)
            result.rejected += rejected
        if result.records % PROGRESS_EVERY == 0:
            out.write(f"backfill: read {result.records} records, {len(arrivals)} messages\n")
    late = late_ids(arrivals, settings.allowed_lateness)
    unique: dict[tuple[str, str], Message] = {}
    for message in arrivals:
        unique.setdefault(identity(message), message)
    result.duplicates = len(arrivals) - len(unique)
    result.messages = len(unique)
    result.late = len(late)
    on_time = [m for ident, m in unique.items() if ident not in late]
    pairs, conversations = build_dataset(
        on_time, conversation_gap=settings.conversation_gap, context_turns=settings.context_turns
    )
    result.pairs, result.conversations = len(pairs), len(conversations)
    out.write(
        f"backfill: {result.messages} messages ({result.duplicates} repeats dropped, {result.late} late), "
        f"{result.pairs} pairs, {result.conversations} conversations; writing\n"
    )
    mask = masker(settings.pii_masking)
    rows: dict[str, list[dict[str, Any]]] = {
        "messages": [
            message_row(m, late=ident in late, partition=None, offset=None, mask=mask)
            for ident, m in unique.items()
        ],
        "turn_pairs": [pair_row(p, mask) for p in pairs],
        "conversations": [conversation_row(c, mask) for c in conversations],
    }
    source = f"file:{from_file}" if from_file is not None else f"topic:{from_topic}"
    for table, table_rows in rows.items():
        version = store.write(
            settings.dataset_root,
            table,
            store.rows_to_arrow(table, table_rows),
            mode="overwrite",
            metadata={"messagehooks.backfill": source},
        )
        result.versions[table] = version
        out.write(f"backfill: {table}: {len(table_rows)} rows -> version {version}\n")
    out.write(f"backfill: done in {time.monotonic() - started:.1f} s\n")
    return result


def _file_values(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as stream:
            for raw in stream:
                if raw.strip():
                    yield raw
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _topic_values(settings: Settings, topic: str, out: TextIO) -> list[bytes]:
    return asyncio.run(_read_topic(settings, topic, out))


async def _read_topic(settings: Settings, topic: str, out: TextIO) -> list[bytes]:
    """Every record of `topic` up to its end when the read starts, partition after partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(settings.bootstrap, topic)
        if not partitions:
            raise ConfigError(f"topic {topic!r} does not exist on {settings.bootstrap}")
        ends = await end_offsets(consumer, partitions, tansu_fixes(settings))
        out.write(f"backfill: reading {sum(ends.values())} records of {topic}\n")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        values: dict[TopicPartition, list[bytes]] = {tp: [] for tp in partitions}
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        values[tp].append(record.value or b"")
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return [value for tp in partitions for value in values[tp]]
    finally:
        await consumer.stop()
