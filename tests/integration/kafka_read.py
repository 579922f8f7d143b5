"""Read back what the pipeline produced: every record of a topic, from the beginning.

Every record read from a project topic is validated against that topic's committed JSON Schema
(docs/schemas/, docgen/schemas.py), so each integration test checks the contract too.
"""

import asyncio
import functools
import json
from typing import Any

import jsonschema
from aiokafka import AIOKafkaConsumer, TopicPartition

from docgen.schemas import SCHEMA_DIR, schema_filename, topic_names
from messagehooks.kafka import topic_partitions


def schema_name(topic: str) -> str | None:
    """The unprefixed name of a project topic (by its name's suffix); None for others (changelogs)."""
    return next((name for name in sorted(topic_names(), key=len, reverse=True) if topic.endswith(name)), None)


def topic_validator(topic: str) -> jsonschema.protocols.Validator | None:
    """The schema validator of a project topic; None for other topics."""
    name = schema_name(topic)
    return None if name is None else _validator(name)


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMA_DIR / schema_filename(name)).read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def validate_record(topic: str, value: Any, *, where: str = "") -> None:
    """Raise AssertionError naming every violation if `value` does not match `topic`'s schema."""
    validator = topic_validator(topic)
    if validator is None:
        return
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors)
        raise AssertionError(f"record {where or topic} breaks the {schema_name(topic)} schema: {details}")


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    expect: int,
    timeout: float = 20.0,
    validate: bool = True,
    distinct: str | None = None,
    committed: bool = False,
) -> list[dict[str, Any]]:
    """Records of `topic` (JSON values plus `_key`, `_partition`, `_offset`) until `expect` or timeout.

    With `distinct`, `expect` counts distinct values of that field: on an at-least-once topic,
    duplicates after a crash must not end the read before the last records arrive.

    With `committed`, only records of committed Kafka transactions (read_committed, as a reader
    of a worker's exactly_once outputs must read); otherwise aborted ones too.

    With `validate`, each record the pipeline wrote (it carries `schema_version`) must match the
    topic's schema; records without it are foreign ones a test injected on purpose (garbage that
    the worker must dead-letter) and are returned as they are.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: list[TopicPartition] = []
        while not partitions and loop.time() < deadline:
            partitions = await topic_partitions(bootstrap, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        while _count(records, distinct) < expect and loop.time() < deadline:
            records.extend(_decoded(await consumer.getmany(timeout_ms=200), validate))
        # A short extra poll: anything beyond `expect` would be a duplicate the test must see.
        records.extend(_decoded(await consumer.getmany(timeout_ms=300), validate))
    finally:
        await consumer.stop()
    return records


def _count(records: list[dict[str, Any]], distinct: str | None) -> int:
    return len(records) if distinct is None else len({r.get(distinct) for r in records})


def _decoded(batches: dict[TopicPartition, list[Any]], validate: bool = True) -> list[dict[str, Any]]:
    decoded = []
    for tp_records in batches.values():
        for r in tp_records:
            value = json.loads(r.value)
            if validate and isinstance(value, dict) and "schema_version" in value:
                validate_record(r.topic, value, where=f"{r.topic}[{r.partition}]@{r.offset}")
            value.update(_key=r.key.decode() if r.key else None, _partition=r.partition, _offset=r.offset)
            decoded.append(value)
    return decoded
