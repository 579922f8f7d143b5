"""The sink's side of a rebalance: commit before partitions go, resume from the Delta log when they come."""

import time
from typing import TYPE_CHECKING

from aiokafka import ConsumerRebalanceListener, TopicPartition

from dataset import store

if TYPE_CHECKING:
    from dataset.sink.consumer import DatasetSink


class SinkRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    """Called by the consumer's group coordinator around each rebalance."""

    def __init__(self, sink: "DatasetSink") -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is buffered while the partitions are still ours."""
        sink = self._sink
        try:
            await sink.flush(force=True)
        finally:
            async with sink.lock:
                sink.forget()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Reload the ids (another sink may have written) and resume from the Delta log.

        Holds the lock, so no record is processed against a half-loaded index or position.
        """
        sink = self._sink
        async with sink.lock:
            today = store.event_date(time.time())
            for buffer in sink.buffers.values():
                buffer.index.clear()
                await buffer.index.preload(today)
            if sink.consumer is not None:
                await sink.seek_committed(sink.consumer, assigned)
                sink.rewind_soon()  # the rest of the assignment, on the next loop
