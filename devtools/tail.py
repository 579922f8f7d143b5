"""`messagehooks tail`: pretty-print a topic's records, optionally only one chat's."""

import asyncio
from dataclasses import dataclass
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from messagehooks.engines import tansu_fixes
from messagehooks.errors import ConfigError
from messagehooks.kafka import end_offsets, seek_to_start, topic_reader
from messagehooks.settings import ENV_PREFIX, Settings


def resolve_topic(settings: Settings, name: str) -> str:
    """A full topic name from a full or short (``messages``, ``turn-pairs``) name."""
    topics = settings.topics.all()
    if name in topics:
        return name
    full = settings.topic_prefix + name
    if full in topics:
        return full
    raise ConfigError(f"unknown topic {name!r}; expected one of {', '.join(topics)}")


QUIET_HINT_AFTER = 10.0
"""Seconds without a printed record before `tail` says, once, on stderr, why it may be quiet."""


async def tail(
    settings: Settings,
    topic_name: str,
    *,
    from_beginning: bool,
    chat: str | None,
    limit: int | None,
    timeout: float | None,
    out: TextIO,
    err: TextIO,
    hint_after: float = QUIET_HINT_AFTER,
) -> int:
    """Print records until Ctrl-C, `limit` records, or `timeout` seconds in all."""
    topic = resolve_topic(settings, topic_name)
    async with topic_reader(settings, topic) as (consumer, partitions):
        if from_beginning:
            await seek_to_start(consumer, partitions)
        else:
            for tp, offset in (await end_offsets(consumer, partitions, tansu_fixes(settings))).items():
                consumer.seek(tp, offset)
        printer = _Printer(chat, limit, out)
        hint = _QuietHint(hint_after, quiet_hint(settings, topic, chat), err)
        return await _print_records(consumer, printer, timeout, hint)


def quiet_hint(settings: Settings, topic: str, chat: str | None) -> str:
    """Why `topic` may have nothing to print yet: records of some topics wait for a conversation to close."""
    topics = settings.topics
    closing = (
        f"a conversation closes after {ENV_PREFIX}CONVERSATION_GAP of silence in its chat "
        f"({settings.conversation_gap:g} s here, unless `up` was started with another)"
    )
    if topic == topics.conversations:
        why = f"a conversation is written when it closes: {closing}"
    elif topic == topics.turn_pairs:
        why = f"an answered pair is written when its answer arrives, an unanswered one when {closing}"
    else:
        why = "is the pipeline running (`make run`) and is anything posting to it?"
    of_chat = f" of chat {chat!r}" if chat is not None else ""
    return f"tail: no record{of_chat} on {topic} yet; {why}. --timeout S stops tail.\n"


class _Printer:
    """Prints the records wanted (all, or one chat's) until `limit` have been printed."""

    def __init__(self, chat: str | None, limit: int | None, out: TextIO) -> None:
        self.wanted = chat.encode() if chat is not None else None
        self.limit = limit
        self.out = out
        self.printed = 0

    @property
    def done(self) -> bool:
        return self.limit is not None and self.printed >= self.limit

    def print(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if self.done or (self.wanted is not None and record.key != self.wanted):
            return
        header = f"# {record.topic}[{record.partition}]@{record.offset} key={_text(record.key)}\n"
        self.out.write(header + _pretty(record.value) + "\n")
        self.out.flush()
        self.printed += 1


@dataclass
class _QuietHint:
    """`text`, written once to `err` when nothing has been printed after `after` seconds."""

    after: float
    text: str
    err: TextIO
    given: bool = False

    def check(self, elapsed: float, printed: int) -> None:
        if not self.given and printed == 0 and elapsed >= self.after:
            self.err.write(self.text)
            self.err.flush()
            self.given = True


async def _print_records(
    consumer: AIOKafkaConsumer, printer: _Printer, timeout: float | None, hint: _QuietHint
) -> int:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not printer.done:
        elapsed = loop.time() - started
        if timeout is not None and elapsed >= timeout:
            break
        hint.check(elapsed, printer.printed)
        wait = 0.2 if timeout is None else min(0.2, timeout - elapsed)
        batches = await consumer.getmany(timeout_ms=max(1, int(wait * 1000)))
        for record in sorted(
            (r for rs in batches.values() for r in rs), key=lambda r: (r.timestamp, r.partition)
        ):
            printer.print(record)
    return 0


def _pretty(value: bytes | None) -> str:
    if value is None:
        return "null"
    try:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return repr(value)


def _text(key: bytes | None) -> str:
    return "null" if key is None else key.decode("utf-8", "replace")
