"""Client-side fixes for the embedded Tansu broker and for Faust, kept in one place.

Each fix names the upstream behaviour it works around, so it can be dropped when upstream
fixes it. See ../shared/BROKER.md for the measurements behind them.
"""

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], embedded: bool
) -> dict[TopicPartition, int]:
    """The true end offset (last offset + 1) of each assigned partition.

    Tansu 0.6 answers ListOffsets(LATEST) with the base offset of the last *batch* + 1, not the
    last offset + 1; a Fetch response's high watermark is right. On the embedded broker, fetch
    from just below the reported offset and read the high watermark. The caller must have
    assigned `partitions` to `consumer`; its positions are left wherever the fetch ended.
    """
    reported: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
    if not embedded:
        return reported
    probing = {tp: offset for tp, offset in reported.items() if offset > 0}
    for tp, offset in probing.items():
        consumer.seek(tp, offset - 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline and any(consumer.highwater(tp) is None for tp in probing):
        await consumer.getmany(*probing, timeout_ms=200)
    return {tp: consumer.highwater(tp) or offset for tp, offset in reported.items()}
