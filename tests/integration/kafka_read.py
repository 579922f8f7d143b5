"""Read back what the pipeline produced: every record of a topic, from the beginning."""

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(
    bootstrap: str, topic: str, *, expect: int, timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Records of `topic` (JSON values plus `_key`, `_partition`, `_offset`) until `expect` or timeout."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list[dict[str, Any]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: set[int] = set()
        while not partitions and loop.time() < deadline:
            await consumer.topics()  # refreshes metadata
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        while len(records) < expect and loop.time() < deadline:
            records.extend(_decoded(await consumer.getmany(timeout_ms=200)))
        # A short extra poll: anything beyond `expect` would be a duplicate the test must see.
        records.extend(_decoded(await consumer.getmany(timeout_ms=300)))
    finally:
        await consumer.stop()
    return records


def _decoded(batches: dict[TopicPartition, list[Any]]) -> list[dict[str, Any]]:
    decoded = []
    for tp_records in batches.values():
        for r in tp_records:
            value = json.loads(r.value)
            value.update(_key=r.key.decode() if r.key else None, _partition=r.partition, _offset=r.offset)
            decoded.append(value)
    return decoded
