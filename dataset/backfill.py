"""`messagehooks backfill`: rebuild the dataset tables in batch from recorded deliveries.

The input is the `raw` topic (every accepted body, as received), the `messages` topic, or a
JSONL file of deliveries (the recorded-delivery format of messagehooks/recorded.py, which
`replay` reads too and every `raw` record is). Messages are re-derived with the ingest's own
validation, flagged `late` in arrival order with the stream's rule (`features.lateness`), and
the rest go through `features.batch` — the stream's oracle — so a backfill of the traffic a
stream processed equals what the stream wrote (tests/integration/test_dataset.py).
Each table is overwritten in one commit: a new version, the old ones stay readable.
"""

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from aiokafka import TopicPartition

from dataset import store
from dataset.rows import conversation_row, masker, message_row, pair_row
from features.batch import build_dataset
from features.lateness import identity, late_ids
from messagehooks.engines import tansu_fixes
from messagehooks.errors import ConfigError, InvalidPayload, MalformedLine
from messagehooks.kafka import end_offsets, seek_to_start, topic_reader
from messagehooks.recorded import parse_recorded
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
    """The messages of one recorded delivery (messagehooks/recorded.py), and how many the ingest rejects.

    The wrapper's `hook`, `received_at` and `request_id` are used when present (a `raw` topic
    record has them all).

    Raises:
        MalformedLine: `value` is not a recorded delivery (the message names `line`).
    """
    try:
        delivery = parse_recorded(value)
        if delivery is None:
            raise MalformedLine("empty")
        hook_name = delivery.hook or settings.hooks[0].name
        received_at = delivery.received_at or 0.0
        request_id = delivery.request_id or f"backfill-{line}"
    except MalformedLine as exc:
        raise MalformedLine(f"line {line}: {exc}") from exc
    hook = settings.hook(hook_name) or Hook(hook_name)
    try:
        parsed = parse_body(
            delivery.body,
            hook=hook,
            received_at=received_at,
            request_id=request_id,
            max_messages=max(settings.max_messages_per_request, 1),
            ids=settings.pseudonyms,
        )
    except InvalidPayload:
        return [], 1
    return parsed.messages, len(parsed.rejections)


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
    async with topic_reader(settings, topic) as (consumer, partitions):
        ends = await end_offsets(consumer, partitions, tansu_fixes(settings))
        out.write(f"backfill: reading {sum(ends.values())} records of {topic}\n")
        await seek_to_start(consumer, partitions)
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
