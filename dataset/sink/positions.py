"""Contiguous reading: per partition, the next offset the sink expects, and records taken only from it.

The log is immutable, so a record at the expected offset is right whichever fetch brought it.
A record below it is a repeat; one past it comes from a stale fetch and makes the sink seek back,
unless the broker says the records in between are gone (docs/dataset.md, "Contiguous reading").
"""

import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from dataset.sink.stats import SinkStats, describe

logger = logging.getLogger(__name__)

HOLE_AFTER_SEEKS = 3
"""Seeks back to one offset answered by the same later record before that gap is taken as the log's."""

Take = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


class Positions:
    """The next offset this sink expects from each partition it owns (none: it takes nothing)."""

    def __init__(self, stats: SinkStats) -> None:
        self.expected: dict[TopicPartition, int] = {}
        self._seeks_back: dict[TopicPartition, tuple[int, int, int]] = {}
        self._stats = stats

    async def accept(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
        take: Take,
    ) -> None:
        """Pass a partition's records to `take` only contiguously from the offset expected next.

        The log is immutable, so a record at the expected offset is right whichever fetch brought
        it (one from before a seek, or one that ran while a rebalance sought the partition). A
        record past it is a stale fetch: seek back, never skip — unless the broker says the
        records in between are gone (retention), which is counted as `expired`.
        """
        expected = self.expected.get(tp)
        if expected is None:
            return  # not sought by this sink yet (or revoked): the seek delivers it again
        for record in records:
            if record.offset < expected:
                continue  # a repeat of what this sink already has
            if record.offset > expected:
                try:
                    earliest = (await consumer.beginning_offsets([tp]))[tp]
                except (KafkaError, OSError) as exc:  # the broker is away: seek back, never skip
                    logger.warning("could not ask for the topic's start: %s", describe(exc))
                    earliest = expected
                if earliest <= expected and not self._hole(tp, expected, record.offset):
                    self._stats.reseeks += 1
                    logger.warning(
                        "a fetch skipped records this sink has not read: seeking back",
                        extra={
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "expected": expected,
                            "got": record.offset,
                        },
                    )
                    if tp in consumer.assignment():
                        consumer.seek(tp, expected)
                    return
                self._seeks_back.pop(tp, None)
                self._count_gap(tp, expected, record.offset, deleted=earliest > expected)
            await take(record)
            expected = self.expected[tp] = record.offset + 1
        if records and tp in self._seeks_back and self.expected.get(tp, 0) > self._seeks_back[tp][0]:
            del self._seeks_back[tp]  # read past the offset it sought: that episode is over

    async def caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every partition this sink owns is read to its high watermark (last fetch).

        Call it after an empty fetch. The consumer's own position counts too: it moves past
        offsets that hold no record for the sink (a transaction's marker at the log's end).
        """
        assigned = consumer.assignment()
        for tp, position in self.expected.items():
            highwater = consumer.highwater(tp)
            if tp in assigned:
                position = max(position, await consumer.position(tp))
            if highwater is None or position < highwater:
                return False
        return True

    def lag(self, consumer: AIOKafkaConsumer) -> dict[tuple[str, int], float]:
        """Records behind the high watermark, per (topic, partition) this sink owns."""
        lag: dict[tuple[str, int], float] = {}
        for tp, position in list(self.expected.items()):
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag[(tp.topic, tp.partition)] = float(max(0, highwater - position))
        return lag

    def _count_gap(self, tp: TopicPartition, expected: int, got: int, *, deleted: bool) -> None:
        """Count offsets read past: deleted by retention (rows lost: an alert), or log holes.

        A hole holds no record for this sink: a transaction's commit or abort marker, or, read
        committed, an aborted transaction's records (a worker with exactly_once killed mid-way).
        """
        where = {"topic": tp.topic, "partition": tp.partition, "from": expected, "to": got}
        if deleted:
            self._stats.expired += got - expected
            logger.error("records deleted from the topic before the sink read them", extra=where)
        else:
            self._stats.skipped += got - expected
            logger.info(
                "offsets without a record (transaction markers, aborted records) read past", extra=where
            )

    def _hole(self, tp: TopicPartition, expected: int, got: int) -> bool:
        """Whether fetches from `expected` keep starting at `got`: the log has no record between.

        A stale fetch (issued before a seek) is gone after one seek back; the same answer after
        `HOLE_AFTER_SEEKS` seeks is the log itself (a control record, an offset a broker never
        assigned), and seeking again would loop for ever.
        """
        last = self._seeks_back.get(tp)
        count = last[2] + 1 if last is not None and last[:2] == (expected, got) else 1
        self._seeks_back[tp] = (expected, got, count)
        return count > HOLE_AFTER_SEEKS
