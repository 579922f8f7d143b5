"""Records in, rows out: each record decoded, masked and deduplicated into its table's buffer.

A buffer holds what its table's next commit writes, and the offsets that commit records
(`dataset.sink.offsets`). A record whose row is already in the table or pending (`KeyIndex`)
moves the offsets on but adds no row.
"""

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from dataset import store
from dataset.rows import Mask, conversation_row, dead_letter_row, message_row, pair_row
from dataset.sink.key_index import KeyIndex
from dataset.sink.stats import SinkStats
from dataset.tables import PARTITION_COLUMN, SPECS, TableName, TableSpec
from features.lateness import is_late
from messagehooks.schema import decode_message

logger = logging.getLogger(__name__)


@dataclass
class TableBuffer:
    """Rows waiting for one table's next commit, and the offsets that commit will record."""

    spec: TableSpec
    index: KeyIndex
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)

    def clear(self) -> None:
        """Drop pending rows and offsets (after a commit, or before a rewind)."""
        self.rows.clear()
        self.next_offsets.clear()
        self.since = time.monotonic()


class RecordIntake:
    """Turns the records of the input topics into rows of their tables' buffers."""

    def __init__(
        self,
        *,
        tables: Mapping[str, TableName],
        buffers: Mapping[TableName, TableBuffer],
        stats: SinkStats,
        mask: Mask,
        allowed_lateness: float,
        incarnations: Mapping[str, str | None],
    ) -> None:
        self._tables = tables
        self._buffers = buffers
        self._stats = stats
        self._mask = mask
        self._allowed_lateness = allowed_lateness
        # Read when a dead letter's id is made: the topic's incarnation (`dataset.sink.offsets`).
        self._incarnations = incarnations

    async def add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Buffer `record`'s row unless it is a repeat; an undecodable record is logged and skipped."""
        self._stats.records += 1
        name = self._tables[record.topic]
        buffer = self._buffers[name]
        tp = TopicPartition(record.topic, record.partition)
        buffer.next_offsets[tp] = record.offset + 1
        if not buffer.rows:
            buffer.since = time.monotonic()
        try:
            row = await self._row(name, record, buffer.index)
        except (msgspec.MsgspecError, orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as exc:
            self._stats.undecodable += 1
            logger.error(
                "record skipped: not a %s record",
                name,
                extra={
                    "topic": record.topic,
                    "partition": record.partition,
                    "offset": record.offset,
                    "error": str(exc)[:200],
                },
            )
            return
        if row is not None:
            buffer.rows.append(row)

    async def _row(
        self, name: TableName, record: ConsumerRecord[bytes, bytes], index: KeyIndex
    ) -> dict[str, Any] | None:
        value = record.value or b""
        if name == "messages":
            message = decode_message(value)
            day = store.event_date(message.timestamp)
            ident = (message.chat_id, message.message_id)
            if await index.seen(day, ident):
                self._stats.duplicates += 1
                return None
            newest = await index.newest(message.chat_id, day)
            late = is_late(message.timestamp, newest, self._allowed_lateness)
            self._stats.late += late
            await index.add(day, ident, message.chat_id, float(message.timestamp))
            return message_row(
                message, late=late, partition=record.partition, offset=record.offset, mask=self._mask
            )
        if name == "turn_pairs":
            row = pair_row(value, self._mask)
        elif name == "conversations":
            row = conversation_row(value, self._mask)
        else:
            row = dead_letter_row(
                value,
                key=record.key,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
                mask=self._mask,
                incarnation=self._incarnations.get(record.topic),
            )
        ident = tuple(row[column] for column in SPECS[name].id_columns)
        day = row[PARTITION_COLUMN]
        if await index.seen(day, ident):
            self._stats.duplicates += 1
            return None
        await index.add(day, ident)
        return row
