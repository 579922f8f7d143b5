"""The Delta-offsets protocol: offsets recorded in the Delta log, and the resume from them.

Each commit records the next offset of every partition it covers, and an assigned partition
resumes from there (docs/dataset.md, "Exactly once"). Offsets are positions in one log, so they
are recorded and looked up under the topic's incarnation (cluster id and topic id): a topic
created again is read from its start.
"""

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition

from dataset import store
from dataset.tables import TableName
from messagehooks.kafka import TopicIncarnations, end_offsets

logger = logging.getLogger(__name__)

INCARNATION_CHECK_SECONDS = 2.0
"""How often a running sink asks whether a topic it reads was deleted and created again."""


def app_id(group: str, tp: TopicPartition, incarnation: str) -> str:
    """The Delta application-transaction id under which a partition's next offset is recorded.

    It names the topic's incarnation (cluster id and topic id): offsets recorded for another
    incarnation — the topic deleted and created again, a fresh embedded broker, another cluster —
    are never looked up, so never used to seek.
    """
    return f"{group}:{tp.topic}:{tp.partition}:{incarnation}"


class DeltaOffsets:
    """What a commit records for its partitions, and where each assigned partition resumes."""

    def __init__(self, *, root: str, group: str, tables: Mapping[str, TableName], tansu: bool) -> None:
        self._root = root
        self._group = group
        self._tables = tables
        self._tansu = tansu
        # The incarnation of each input topic the positions belong to (see `app_id`).
        self.incarnations: dict[str, str | None] = {}
        self.lookup: TopicIncarnations | None = None
        self._next_incarnation_check = 0.0

    def recorded(self, next_offsets: Mapping[TopicPartition, int]) -> dict[str, int]:
        """The app ids and versions a commit records (none for a topic of unknown incarnation)."""
        return {
            app_id(self._group, tp, incarnation): offset
            for tp, offset in next_offsets.items()
            if (incarnation := self.incarnations.get(tp.topic)) is not None
        }

    async def seek_committed(
        self,
        consumer: AIOKafkaConsumer,
        partitions: Iterable[TopicPartition],
        positions: dict[TopicPartition, int],
    ) -> None:
        """Seek each partition to where its table's log says, for the topic's current incarnation.

        No offset recorded for this incarnation (a new topic, a fresh broker, another cluster, or
        a dataset written before offsets named incarnations): the partition is read from the start.
        Each partition's offset becomes its expected position in `positions`.
        """
        by_table: dict[TableName, list[TopicPartition]] = {}
        for tp in partitions:
            by_table.setdefault(self._tables[tp.topic], []).append(tp)
        if not by_table:
            return
        topics = {tp.topic for tps in by_table.values() for tp in tps}
        self.incarnations.update(await self.lookup_incarnations(topics))
        from_start: list[TopicPartition] = []
        for table, tps in by_table.items():
            incarnation = self.incarnations.get(tps[0].topic)
            ids = [app_id(self._group, tp, incarnation or "") for tp in tps]
            found = await asyncio.to_thread(store.transaction_versions, self._root, table, ids)
            versions = found if incarnation is not None else [None] * len(tps)
            ends = await end_offsets(consumer, tps, self._tansu)
            for tp, version in zip(tps, versions, strict=True):
                if version is not None and version > ends[tp]:
                    # Same incarnation, yet the log is ahead of the topic: records were lost
                    # by the broker itself (e.g. an unclean leader election). Read what is there.
                    logger.warning(
                        "the Delta log is ahead of the topic: reading it from the start",
                        extra={"topic": tp.topic, "partition": tp.partition, "log": version, "end": ends[tp]},
                    )
                    version = None
                if version is None:
                    from_start.append(tp)
                else:
                    consumer.seek(tp, version)
                positions[tp] = version or 0
                logger.info(
                    "partition assigned",
                    extra={
                        "topic": tp.topic,
                        "partition": tp.partition,
                        "offset": version,
                        "incarnation": incarnation,
                        "from": "the Delta log"
                        if version is not None
                        else "the start (no offset recorded for this incarnation of the topic)",
                    },
                )
        if from_start:
            # One request for all: each call waits for the fetcher's turn (up to a fetch's wait),
            # and a slow assignment on Kafka outlasted the session (the member was expelled).
            await consumer.seek_to_beginning(*from_start)

    async def lookup_incarnations(self, topics: Iterable[str]) -> dict[str, str | None]:
        """The topics' incarnations now (None where unknown: their offsets are then not recorded)."""
        if self.lookup is None:
            return {}
        try:
            return await asyncio.to_thread(self.lookup.lookup, topics)
        except Exception as exc:  # the broker is away: keep reading, record no offsets meanwhile
            logger.warning("could not look up the topics' incarnations: %s", exc)
            return dict.fromkeys(topics)

    async def created_again(self, topics: set[str]) -> dict[str, str]:
        """Topics among `topics` now in another incarnation (asked every `INCARNATION_CHECK_SECONDS`).

        Deleted topics may come back: only a new incarnation counts, not a missing one.
        """
        if time.monotonic() < self._next_incarnation_check:
            return {}
        self._next_incarnation_check = time.monotonic() + INCARNATION_CHECK_SECONDS
        if not topics:
            return {}
        now = await self.lookup_incarnations(topics)
        return {
            topic: incarnation
            for topic, incarnation in now.items()
            if incarnation is not None and incarnation != self.incarnations.get(topic)
        }

    async def read_again(
        self, consumer: AIOKafkaConsumer, changed: Mapping[str, str], positions: dict[TopicPartition, int]
    ) -> None:
        """Take the new incarnations and read those topics from their start (after a commit)."""
        for topic, incarnation in changed.items():
            before, self.incarnations[topic] = self.incarnations.get(topic), incarnation
            if before is None:
                continue  # unknown when assigned: it was read from the start anyway
            logger.info(
                "topic %s was created again: reading it from its start",
                topic,
                extra={"before": before, "now": incarnation},
            )
            for tp in [tp for tp in positions if tp.topic == topic]:
                positions[tp] = 0
                if tp in consumer.assignment():
                    await consumer.seek_to_beginning(tp)
