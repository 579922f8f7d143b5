"""`messagehooks tail`: pretty-print a topic's records, optionally only one chat's."""

import asyncio
from typing import TextIO

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from messagehooks.engines import tansu_fixes
from messagehooks.errors import BrokerUnavailable, ConfigError
from messagehooks.kafka import broker_reached, topic_partitions
from messagehooks.kafka_compat import end_offsets
from messagehooks.settings import Settings


def resolve_topic(settings: Settings, name: str) -> str:
    """A full topic name from a full or short (``messages``, ``turn-pairs``) name."""
    topics = settings.topics.all()
    if name in topics:
        return name
    full = settings.topic_prefix + name
    if full in topics:
        return full
    raise ConfigError(f"unknown topic {name!r}; expected one of {', '.join(topics)}")


async def tail(
    settings: Settings,
    topic_name: str,
    *,
    from_beginning: bool,
    chat: str | None,
    limit: int | None,
    idle_timeout: float | None,
    out: TextIO,
) -> int:
    """Print records until Ctrl-C, `limit` records, or `idle_timeout` seconds without one."""
    topic = resolve_topic(settings, topic_name)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, group_id=None)
    partitions = await _connect(consumer, settings, topic)
    try:
        if not partitions:
            raise ConfigError(f"topic {topic!r} does not exist on {settings.bootstrap}")
        consumer.assign(partitions)
        if from_beginning:
            await consumer.seek_to_beginning(*partitions)
        else:
            for tp, offset in (await end_offsets(consumer, partitions, tansu_fixes(settings))).items():
                consumer.seek(tp, offset)
        return await _print_records(consumer, chat, limit, idle_timeout, out)
    finally:
        await consumer.stop()


async def _connect(consumer: AIOKafkaConsumer, settings: Settings, topic: str) -> list[TopicPartition]:
    """Start `consumer` and list `topic`'s partitions; an unreachable broker is one error line."""
    try:
        with broker_reached(settings.bootstrap):
            await consumer.start()
            return await topic_partitions(settings.bootstrap, topic)
    except BrokerUnavailable:
        await consumer.stop()
        raise


async def _print_records(
    consumer: AIOKafkaConsumer,
    chat: str | None,
    limit: int | None,
    idle_timeout: float | None,
    out: TextIO,
) -> int:
    printed = 0
    loop = asyncio.get_running_loop()
    last = loop.time()
    wanted = chat.encode() if chat is not None else None
    while limit is None or printed < limit:
        batches = await consumer.getmany(timeout_ms=200)
        records = sorted((r for rs in batches.values() for r in rs), key=lambda r: (r.timestamp, r.partition))
        if records:
            last = loop.time()
        elif idle_timeout is not None and loop.time() - last > idle_timeout:
            break
        for record in records:
            if wanted is not None and record.key != wanted:
                continue
            header = f"# {record.topic}[{record.partition}]@{record.offset} key={_text(record.key)}\n"
            out.write(header + _pretty(record.value) + "\n")
            out.flush()
            printed += 1
            if limit is not None and printed >= limit:
                break
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
