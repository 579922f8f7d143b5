"""The dataset sink: Kafka topics -> Delta tables, exactly once (the protocol: docs/dataset.md).

A plain aiokafka consumer (no Faust: it keeps no state worth a changelog) reads `messages`,
`turn-pairs`, `conversations` and `dead-letter`, buffers rows per table and commits each table's
buffer as one Delta version every `sink_flush_interval` seconds (or at `sink_flush_rows`), in a
thread. Each commit also records, as Delta application transactions, the next Kafka offset of
every partition it covers; on (re)assignment the sink seeks to those offsets, not to Kafka's
committed ones. Rows are also deduplicated by their table's id, against the table itself, so a
redelivered message or a pair re-emitted after a worker crash is written once. Right after a
table's commit, the sink also compacts or vacuums that table when its schedule says so
(dataset/upkeep.py), so its small files do not pile up.
"""

import asyncio
import functools
import logging
import operator
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import msgspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from dataset import maintenance, store
from dataset.id_digests import IdDigests
from dataset.rows import Mask, conversation_row, dead_letter_row, is_late, masker, message_row, pair_row
from dataset.store import PARTITION_COLUMN, TableName, TableSpec
from dataset.upkeep import TableUpkeep, UpkeepPolicy
from messagehooks.engines import tansu_fixes
from messagehooks.health import SinkHealth, healthy_now, write_health
from messagehooks.kafka import TopicIncarnations, end_offsets
from messagehooks.metrics import Gauges, serve, sink_metrics
from messagehooks.ports import sink_metrics_listener
from messagehooks.restarts import Backoff
from messagehooks.schema import decode_message
from messagehooks.settings import Settings

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 6.0
"""On a graceful stop, how long the sink reads on towards the topics' end (`up` waits 30 s).

`up` stops the ingest and the worker before the sink, so the topics are complete by then; with
the embedded, in-memory broker whatever the sink left in them would die with the broker.
"""

FETCH_MAX_WAIT_MS = 500
"""How long the broker may hold a fetch for new records (aiokafka's default, made explicit)."""

HOLE_AFTER_SEEKS = 3
"""Seeks back to one offset answered by the same later record before that gap is taken as the log's."""
MAX_CACHED_DATES = 8
"""Date partitions whose ids a table's index keeps in memory (older ones reload on demand)."""

INCARNATION_CHECK_SECONDS = 2.0
"""How often a running sink asks whether a topic it reads was deleted and created again."""

METADATA_MAX_AGE_MS = 5_000
"""How old the consumer's topic metadata may get. A topic the consumer saw deleted is left out of
its assignment until a refresh shows it again: aiokafka's default (5 min) left a topic created
again unread for minutes on Kafka (Tansu creates a topic when a Metadata request names it)."""


@dataclass
class SinkStats:
    """Counts of one sink's life: logged periodically and read by the benchmarks."""

    records: int = 0
    rows: int = 0
    duplicates: int = 0
    late: int = 0
    undecodable: int = 0
    reseeks: int = 0
    expired: int = 0
    skipped: int = 0
    commits: int = 0
    failed_commits: int = 0
    largest_commit: int = 0
    commit_seconds: float = 0.0
    compactions: int = 0
    compacted_files: int = 0
    vacuumed_files: int = 0
    failed_upkeeps: int = 0


Ident = tuple[str, ...]
"""A row's values of its table's id columns (`TableSpec.id_columns`): (chat, message id), (pair id)."""


def joined(ident: Ident) -> str:
    """One string per identity, never the same for two: the chat's length prefixes a pair."""
    if len(ident) == 1:
        return ident[0]
    scope, key = ident
    return f"{len(scope)}:{scope}{key}"


class KeyIndex:
    """The ids a table holds, per date partition, loaded from the table when first needed.

    A derived row's date comes from its event time, so a repeat of it always falls in the same
    partition as the original: checking that partition is exact. A message id does not fix the
    timestamp (the same `_raw.uuid` may come again with another one), so for `messages` the
    index also keeps digests of every id in the table and confirms a hit on another date. For
    `messages` it keeps each chat's newest event time too, from which a straggler is flagged `late`.
    A message is known by (chat id, message id), as in the stream (`TableSpec.scope`).
    """

    def __init__(self, root: str, spec: TableSpec, *, watermarks: bool = False) -> None:
        self._root = root
        self._spec = spec
        self._watermarks = watermarks
        self._keys: dict[date, set[str]] = {}
        self._newest: dict[date, dict[str, float]] = {}
        self._table_dates: set[date] | None = None
        self._across_dates = watermarks  # only message ids are independent of the event time
        self._digests: IdDigests | None = None

    def clear(self) -> None:
        """Forget everything (another sink may have written the partitions assigned now)."""
        self._keys.clear()
        self._newest.clear()
        self._table_dates = None
        self._digests = None

    def seen(self, day: date, ident: Ident) -> bool:
        """Whether `ident` is in the table or pending in this sink (on any date, for messages)."""
        self._ensure(day)
        key = joined(ident)
        if key in self._keys[day]:
            return True
        return (
            self._across_dates and self._ensure_digests().maybe_seen(key) and self._on_other_date(key, ident)
        )

    def add(self, day: date, ident: Ident, chat: str | None = None, ts: float | None = None) -> None:
        """Record a row as pending (the caller commits it or clears the index)."""
        self._ensure(day)
        key = joined(ident)
        self._keys[day].add(key)
        if self._across_dates:
            self._ensure_digests().add(key)
        if self._table_dates is not None:
            self._table_dates.add(day)
        if chat is not None and ts is not None:
            newest = self._newest.setdefault(day, {})
            if ts > newest.get(chat, float("-inf")):
                newest[chat] = ts

    def newest(self, chat: str, day: date) -> float | None:
        """The chat's newest event time in partitions from `day` on (all are loaded for it)."""
        for later in self._dates_from(day):
            self._ensure(later)
        times = [newest[chat] for d, newest in self._newest.items() if d >= day and chat in newest]
        return max(times, default=None)

    def preload(self, day: date) -> None:
        """Load `day`'s ids now (blocking: call it in a thread) so the event loop does not."""
        self._dates_from(day)
        self._ensure(day)
        if self._across_dates:
            self._ensure_digests()

    def evict(self) -> None:
        """Drop the oldest cached partitions (call only when nothing is pending)."""
        for day in sorted(self._keys)[:-MAX_CACHED_DATES]:
            self._keys.pop(day, None)
            self._newest.pop(day, None)

    def _dates_from(self, day: date) -> list[date]:
        if self._table_dates is None:
            self._table_dates = set()
            if store.exists(self._root, self._spec.name):
                table = store.open_table(self._root, self._spec.name)  # a corrupt log: TableCorrupt
                for partition in table.partitions():
                    self._table_dates.add(date.fromisoformat(str(partition[PARTITION_COLUMN])))
        return sorted(d for d in self._table_dates if d >= day)

    def _ensure_digests(self) -> IdDigests:
        if self._digests is None:
            keys: list[str] = []
            if store.exists(self._root, self._spec.name):
                dataset = store.dataset(store.open_table(self._root, self._spec.name))
                keys = self._joined_keys(dataset.to_table(columns=list(self._spec.id_columns)))
            self._digests = IdDigests(keys)
        return self._digests

    def _on_other_date(self, key: str, ident: Ident) -> bool:
        """Confirm a digest hit: `key` pending or cached on some date, else present in the table."""
        if any(key in keys for keys in self._keys.values()):
            return True
        if not store.exists(self._root, self._spec.name):
            return False
        dataset = store.dataset(store.open_table(self._root, self._spec.name))
        conditions = [
            ds.field(column) == value for column, value in zip(self._spec.id_columns, ident, strict=True)
        ]
        return int(dataset.count_rows(filter=functools.reduce(operator.and_, conditions))) > 0

    def _joined_keys(self, loaded: pa.Table) -> list[str]:
        columns = [loaded.column(c).to_pylist() for c in self._spec.id_columns]
        return [joined(ident) for ident in zip(*columns, strict=True)]

    def _ensure(self, day: date) -> None:
        if day in self._keys:
            return
        keys: set[str] = set()
        newest: dict[str, float] = {}
        if store.exists(self._root, self._spec.name):
            columns = list(self._spec.id_columns)
            if self._watermarks:
                columns += [c for c in ("chat_id", self._spec.time_column) if c not in columns]
            dataset = store.dataset(store.open_table(self._root, self._spec.name))
            loaded = dataset.to_table(columns=columns, filter=ds.field(PARTITION_COLUMN) == day)
            keys.update(self._joined_keys(loaded))
            if self._watermarks:
                times = loaded.column(self._spec.time_column).to_pylist()
                for chat, ts in zip(loaded.column("chat_id").to_pylist(), times, strict=True):
                    if ts > newest.get(chat, float("-inf")):
                        newest[chat] = ts
        self._keys[day] = keys
        self._newest[day] = newest


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


def app_id(group: str, tp: TopicPartition, incarnation: str) -> str:
    """The Delta application-transaction id under which a partition's next offset is recorded.

    It names the topic's incarnation (cluster id and topic id): offsets recorded for another
    incarnation — the topic deleted and created again, a fresh embedded broker, another cluster —
    are never looked up, so never used to seek.
    """
    return f"{group}:{tp.topic}:{tp.partition}:{incarnation}"


class DatasetSink:
    """Consume the output topics and keep the four Delta tables exactly in step with them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.dataset_root
        self.stats = SinkStats()
        topics = settings.topics
        self.tables: dict[str, TableName] = {
            topics.messages: "messages",
            topics.turn_pairs: "turn_pairs",
            topics.conversations: "conversations",
            topics.dead_letter: "dead_letters",
        }
        self.buffers: dict[TableName, TableBuffer] = {
            name: TableBuffer(spec, KeyIndex(self.root, spec, watermarks=name == "messages"))
            for name, spec in store.SPECS.items()
        }
        policy = UpkeepPolicy.of(settings)
        self.upkeep = {name: TableUpkeep(self.root, name, policy) for name in store.SPECS}
        self._mask: Mask = masker(settings.pii_masking)
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        # The next offset this sink expects from each partition it owns (see `_accept`).
        self._positions: dict[TopicPartition, int] = {}
        self._seeks_back: dict[TopicPartition, tuple[int, int, int]] = {}
        # The incarnation of each input topic the positions above belong to (see `app_id`).
        self._incarnations: dict[str, str | None] = {}
        self._lookup: TopicIncarnations | None = None
        self._next_incarnation_check = 0.0
        self.gauges = Gauges()
        self.metrics = sink_metrics(self.stats, self.gauges)
        self._last_commit = time.monotonic()
        # After a failed commit: wait before the next try, and rewind until the seek succeeds.
        self._retry = Backoff()
        self._rewind_due: float | None = None
        self._health: SinkHealth | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and commit until `stop` is set, then drain the topics and commit the rest.

        The drain reads on until a whole fetch comes back empty, for at most `DRAIN_SECONDS`.
        """
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap,
            group_id=self.settings.sink_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Joins take half the session on Tansu; same setting as the workers.
            session_timeout_ms=int(self.settings.session_timeout * 1000),
            heartbeat_interval_ms=round(self.settings.heartbeat_interval * 1000),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            # Only committed transactions (a worker with exactly_once); Tansu has no transactions.
            isolation_level="read_uncommitted" if tansu_fixes(self.settings) else "read_committed",
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        self._consumer = consumer
        self._lookup = TopicIncarnations(self.settings.bootstrap)
        consumer.subscribe(list(self.tables), listener=_Listener(self))
        self._report(healthy_now("started"))
        if not await _start_unless_stopped(consumer, stop):
            self._lookup = None
            return
        logger.info("dataset sink started", extra={"root": self.root, "group": self.settings.sink_group})
        last_log = time.monotonic()
        drain_until: float | None = None
        try:
            while True:
                stopping = stop.is_set()
                # Stopping, wait out a whole fetch: an empty answer then means the topics' end.
                wait_ms = 2 * FETCH_MAX_WAIT_MS if stopping else 100
                batch = await consumer.getmany(timeout_ms=wait_ms, max_records=10_000)
                await self._rewind_if_due()
                async with self._lock:  # not while a rebalance resets positions and indexes
                    for tp, records in batch.items():
                        await self._accept(consumer, tp, records)
                await self.flush(force=False)
                await self._check_incarnations(consumer)
                self._refresh_gauges(consumer)
                if time.monotonic() - last_log > 30:
                    logger.info("sink stats", extra=vars(self.stats))
                    last_log = time.monotonic()
                if stop.is_set():
                    drain_until = drain_until or time.monotonic() + DRAIN_SECONDS
                    if stopping and not batch and await self._caught_up(consumer):
                        break
                    if time.monotonic() > drain_until:
                        lag = {
                            f"{topic}[{partition}]": n for (topic, partition), n in self.gauges.lag.items()
                        }
                        logger.warning("stopping before the end of the topics", extra={"lag": lag})
                        break
            await self.flush(force=True)
        finally:
            await consumer.stop()
            # librdkafka's client closes its connections only when dropped: a broker stopped
            # after this sink (the embedded one waits for its clients) is not kept waiting.
            self._lookup = None

    async def _caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        """Whether every partition this sink owns is read to its high watermark (last fetch).

        Call it after an empty fetch. The consumer's own position counts too: it moves past
        offsets that hold no record for the sink (a transaction's marker at the log's end).
        """
        assigned = consumer.assignment()
        for tp, position in self._positions.items():
            highwater = consumer.highwater(tp)
            if tp in assigned:
                position = max(position, await consumer.position(tp))
            if highwater is None or position < highwater:
                return False
        return True

    async def _accept(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Take a partition's records only contiguously from the offset this sink expects next.

        The log is immutable, so a record at the expected offset is right whichever fetch brought
        it (one from before a seek, or one that ran while a rebalance sought the partition). A
        record past it is a stale fetch: seek back, never skip — unless the broker says the
        records in between are gone (retention), which is counted as `expired`.
        """
        expected = self._positions.get(tp)
        if expected is None:
            return  # not sought by this sink yet (or revoked): the seek delivers it again
        for record in records:
            if record.offset < expected:
                continue  # a repeat of what this sink already has
            if record.offset > expected:
                try:
                    earliest = (await consumer.beginning_offsets([tp]))[tp]
                except (KafkaError, OSError) as exc:  # the broker is away: seek back, never skip
                    logger.warning("could not ask for the topic's start: %s", _describe(exc))
                    earliest = expected
                if earliest <= expected and not self._hole(tp, expected, record.offset):
                    self.stats.reseeks += 1
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
            self._add(record)
            expected = self._positions[tp] = record.offset + 1
        if records and tp in self._seeks_back and self._positions.get(tp, 0) > self._seeks_back[tp][0]:
            del self._seeks_back[tp]  # read past the offset it sought: that episode is over

    def _count_gap(self, tp: TopicPartition, expected: int, got: int, *, deleted: bool) -> None:
        """Count offsets read past: deleted by retention (rows lost: an alert), or log holes.

        A hole holds no record for this sink: a transaction's commit or abort marker, or, read
        committed, an aborted transaction's records (a worker with exactly_once killed mid-way).
        """
        where = {"topic": tp.topic, "partition": tp.partition, "from": expected, "to": got}
        if deleted:
            self.stats.expired += got - expected
            logger.error("records deleted from the topic before the sink read them", extra=where)
        else:
            self.stats.skipped += got - expected
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

    def _add(self, record: ConsumerRecord[bytes, bytes]) -> None:
        self.stats.records += 1
        name = self.tables[record.topic]
        buffer = self.buffers[name]
        tp = TopicPartition(record.topic, record.partition)
        buffer.next_offsets[tp] = record.offset + 1
        if not buffer.rows:
            buffer.since = time.monotonic()
        try:
            row = self._row(name, record, buffer.index)
        except (msgspec.MsgspecError, orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as exc:
            self.stats.undecodable += 1
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

    def _row(
        self, name: TableName, record: ConsumerRecord[bytes, bytes], index: KeyIndex
    ) -> dict[str, Any] | None:
        value = record.value or b""
        if name == "messages":
            message = decode_message(value)
            day = store.event_date(message.timestamp)
            ident = (message.chat_id, message.message_id)
            if index.seen(day, ident):
                self.stats.duplicates += 1
                return None
            newest = index.newest(message.chat_id, day)
            late = is_late(message.timestamp, newest, self.settings.allowed_lateness)
            self.stats.late += late
            index.add(day, ident, message.chat_id, float(message.timestamp))
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
        ident = tuple(row[column] for column in store.SPECS[name].id_columns)
        day = row[PARTITION_COLUMN]
        if index.seen(day, ident):
            self.stats.duplicates += 1
            return None
        index.add(day, ident)
        return row

    async def flush(self, *, force: bool) -> None:
        """Commit every table whose buffer is due (all non-empty ones when `force`)."""
        async with self._lock:
            interval = self.settings.sink_flush_interval
            now = time.monotonic()
            due = [
                buffer
                for buffer in self.buffers.values()
                if buffer.rows
                and (
                    force
                    or len(buffer.rows) >= self.settings.sink_flush_rows
                    or now - buffer.since >= interval
                )
            ]
            if not due:
                return
            results = await asyncio.gather(
                *(self._commit(buffer, upkeep=not force) for buffer in due), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            committed: dict[TopicPartition, int] = {}
            for buffer, result in zip(due, results, strict=True):
                if not isinstance(result, BaseException):
                    committed.update(buffer.next_offsets)
                    buffer.clear()
                    buffer.index.evict()
            corrupt = next((r for r in failed if isinstance(r, store.TableCorrupt)), None)
            if corrupt is not None:
                raise corrupt  # not transient (unlike a full disk): stop with its one line
            if failed:
                self.stats.failed_commits += len(failed)
                delay = self._retry.next_delay()
                logger.error(
                    "Delta commit failed: rewinding to the committed offsets, next try in %.1f s",
                    delay,
                    exc_info=failed[0],
                )
                self._report(SinkHealth(False, f"Delta commits fail: {_describe(failed[0])}", time.time()))
                await self._rewind(delay)
            else:
                self._retry.reset()
                self._report(healthy_now())
            await self._commit_kafka(committed)

    async def _commit(self, buffer: TableBuffer, *, upkeep: bool) -> int:
        """Commit the buffer as one version, then keep the table in shape if that is due."""
        data = self._arrow(buffer)
        rows = data.num_rows
        offsets = {
            app_id(self.settings.sink_group, tp, incarnation): offset
            for tp, offset in buffer.next_offsets.items()
            if (incarnation := self._incarnations.get(tp.topic)) is not None
        }
        started = time.perf_counter()
        version = await asyncio.to_thread(store.write, self.root, buffer.spec.name, data, offsets=offsets)
        elapsed = time.perf_counter() - started
        self.stats.commit_seconds += elapsed
        self.metrics.commit_seconds.labels(buffer.spec.name).observe(elapsed)
        self.metrics.table_rows.labels(buffer.spec.name).inc(rows)
        self._last_commit = time.monotonic()
        if buffer.spec.name == "messages":
            now = time.time()
            for row in buffer.rows:
                if row["received_at"]:
                    self.metrics.e2e_seconds.observe(max(0.0, now - row["received_at"]))
        self.stats.commits += 1
        self.stats.rows += rows
        self.stats.largest_commit = max(self.stats.largest_commit, rows)
        logger.debug("committed", extra={"table": buffer.spec.name, "rows": rows, "version": version})
        self.upkeep[buffer.spec.name].committed(files=len(pc.unique(data.column(PARTITION_COLUMN))))
        if upkeep:
            await self._keep_up(self.upkeep[buffer.spec.name])
        return version

    async def _keep_up(self, upkeep: TableUpkeep) -> None:
        """Compact or vacuum the table when due: after its commit, before its next (docs/dataset.md).

        A failure is logged and counted, never taken for a failed commit: the rows are in.
        """
        if not upkeep.due():
            return
        try:
            done = await asyncio.to_thread(upkeep.run)
        except Exception as exc:  # the table stays as it was: tried again on its schedule
            self.stats.failed_upkeeps += 1
            logger.warning("upkeep of %s failed: %s", upkeep.table, _describe(exc))
            return
        merged = done.compaction or maintenance.Compaction(0, 0)
        if merged.files_removed:
            self.stats.compactions += 1
            self.stats.compacted_files += merged.files_removed
        self.stats.vacuumed_files += done.vacuumed or 0
        if merged.files_removed or done.vacuumed:
            logger.info(
                "table upkeep",
                extra={
                    "table": upkeep.table,
                    "files_merged": merged.files_removed,
                    "files_written": merged.files_added,
                    "files_vacuumed": done.vacuumed or 0,
                    "seconds": round(done.seconds, 3),
                },
            )

    def _arrow(self, buffer: TableBuffer) -> pa.Table:
        """The buffer as Arrow; a row that does not fit the schema is skipped, not retried forever."""
        try:
            return store.rows_to_arrow(buffer.spec.name, buffer.rows)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            good = []
            for row in buffer.rows:
                try:
                    store.rows_to_arrow(buffer.spec.name, [row])
                except (pa.ArrowException, OverflowError, TypeError, ValueError) as exc:
                    self.stats.undecodable += 1
                    logger.error(
                        "row skipped: does not fit the %s schema",
                        buffer.spec.name,
                        extra={"id": row.get(buffer.spec.key), "error": str(exc)[:200]},
                    )
                else:
                    good.append(row)
            buffer.rows[:] = good
            return store.rows_to_arrow(buffer.spec.name, good)

    def _refresh_gauges(self, consumer: AIOKafkaConsumer) -> None:
        self.gauges.values["seconds_since_commit"] = time.monotonic() - self._last_commit
        lag: dict[tuple[str, int], float] = {}
        for tp, position in list(self._positions.items()):
            highwater = consumer.highwater(tp)
            if highwater is not None:
                lag[(tp.topic, tp.partition)] = float(max(0, highwater - position))
        self.gauges.lag = lag

    async def _commit_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        """Kafka's committed offsets only show lag to operators; resuming uses the Delta log."""
        consumer = self._consumer
        assigned = consumer.assignment() if consumer is not None else set()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets or consumer is None:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # lag reporting must never stop the sink
            logger.warning("Kafka offset commit failed (lag reporting only): %s", exc)

    async def _rewind(self, delay: float) -> None:
        """Forget what is buffered and read again from the Delta log's offsets after `delay`.

        Until the seek succeeds no position is known, so `_accept` takes nothing: a record is
        neither skipped nor taken twice, however long the disk or the broker stays away.
        """
        self._positions.clear()
        for buffer in self.buffers.values():
            buffer.clear()
            buffer.index.clear()
        self._rewind_due = time.monotonic() + delay
        await asyncio.sleep(delay)
        await self._rewind_if_due(locked=True)

    async def _rewind_if_due(self, *, locked: bool = False) -> None:
        """Seek every assigned partition to the Delta log's offsets; retried with backoff on failure."""
        if self._rewind_due is None or time.monotonic() < self._rewind_due or self._consumer is None:
            return
        try:
            if locked:
                await self.seek_committed(self._consumer, self._consumer.assignment())
            else:
                async with self._lock:
                    await self.seek_committed(self._consumer, self._consumer.assignment())
        except Exception as exc:  # the broker or the table is away: keep the sink up, try again
            self._positions.clear()
            delay = self._retry.next_delay()
            self._rewind_due = time.monotonic() + delay
            logger.warning("rewind failed (%s): next try in %.1f s", _describe(exc), delay)
            return
        self._rewind_due = None

    def _report(self, health: SinkHealth) -> None:
        """Write the health file when the state changes (the ingest's /readyz reads it)."""
        if self._health is not None and (self._health.healthy, self._health.detail) == (
            health.healthy,
            health.detail,
        ):
            return
        if write_health(self.settings.sink_health_path, health):
            self._health = health

    async def seek_committed(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]) -> None:
        """Seek each partition to where its table's log says, for the topic's current incarnation.

        No offset recorded for this incarnation (a new topic, a fresh broker, another cluster, or
        a dataset written before offsets named incarnations): the partition is read from the start.
        """
        by_table: dict[TableName, list[TopicPartition]] = {}
        for tp in partitions:
            by_table.setdefault(self.tables[tp.topic], []).append(tp)
        if not by_table:
            return
        topics = {tp.topic for tps in by_table.values() for tp in tps}
        self._incarnations.update(await self._lookup_incarnations(topics))
        from_start: list[TopicPartition] = []
        for table, tps in by_table.items():
            incarnation = self._incarnations.get(tps[0].topic)
            ids = [app_id(self.settings.sink_group, tp, incarnation or "") for tp in tps]
            found = await asyncio.to_thread(store.transaction_versions, self.root, table, ids)
            versions = found if incarnation is not None else [None] * len(tps)
            ends = await end_offsets(consumer, tps, tansu_fixes(self.settings))
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
                self._positions[tp] = version or 0
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

    async def _lookup_incarnations(self, topics: Iterable[str]) -> dict[str, str | None]:
        """The topics' incarnations now (None where unknown: their offsets are then not recorded)."""
        if self._lookup is None:
            return {}
        try:
            return await asyncio.to_thread(self._lookup.lookup, topics)
        except Exception as exc:  # the broker is away: keep reading, record no offsets meanwhile
            logger.warning("could not look up the topics' incarnations: %s", exc)
            return dict.fromkeys(topics)

    async def _check_incarnations(self, consumer: AIOKafkaConsumer) -> None:
        """Re-read from its start a topic deleted and created again under this running sink.

        Its records at the offsets this sink expects are not the ones it expects. What the sink
        holds is committed first, under the old incarnation (those records are gone from the
        topic); the key deduplication keeps the rows of the second read unique.
        """
        if time.monotonic() < self._next_incarnation_check:
            return
        self._next_incarnation_check = time.monotonic() + INCARNATION_CHECK_SECONDS
        assigned = {tp.topic for tp in self._positions}
        if not assigned:
            return
        now = await self._lookup_incarnations(assigned)
        changed = {
            topic: incarnation
            for topic, incarnation in now.items()
            if incarnation is not None and incarnation != self._incarnations.get(topic)
        }
        if not changed:
            return  # deleted topics may come back: wait for their new incarnation
        await self.flush(force=True)
        async with self._lock:
            for topic, incarnation in changed.items():
                before, self._incarnations[topic] = self._incarnations.get(topic), incarnation
                if before is None:
                    continue  # unknown when assigned: it was read from the start anyway
                logger.info(
                    "topic %s was created again: reading it from its start",
                    topic,
                    extra={"before": before, "now": incarnation},
                )
                for tp in [tp for tp in self._positions if tp.topic == topic]:
                    self._positions[tp] = 0
                    if tp in consumer.assignment():
                        await consumer.seek_to_beginning(tp)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit what is buffered while the partitions are still ours."""
        try:
            await self.flush(force=True)
        finally:
            async with self._lock:
                self._positions.clear()
                for buffer in self.buffers.values():
                    buffer.clear()
                    buffer.index.clear()

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Reload the ids (another sink may have written) and resume from the Delta log.

        Holds the lock, so no record is processed against a half-loaded index or position.
        """
        async with self._lock:
            today = store.event_date(time.time())
            for buffer in self.buffers.values():
                buffer.index.clear()
                await asyncio.to_thread(buffer.index.preload, today)
            if self._consumer is not None:
                await self.seek_committed(self._consumer, assigned)
                if self._rewind_due is not None:
                    self._rewind_due = time.monotonic()  # the rest of the assignment, on the next loop


def _describe(exc: BaseException) -> str:
    """One line naming an error: its type and message."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def index_key(table: TableName) -> str:
    """The id column of `table`."""
    return store.SPECS[table].key


async def _start_unless_stopped(consumer: AIOKafkaConsumer, stop: asyncio.Event) -> bool:
    """Start `consumer`, or give up and close it when `stop` is set first (then False).

    aiokafka's `start` waits until every subscribed topic exists. Kafka does not create them on
    request (Tansu does): a sink started before `messagehooks topics` ignored Ctrl-C and SIGTERM.
    """
    starting = asyncio.ensure_future(consumer.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.wait([starting])
        await consumer.stop()
        logger.info("dataset sink stopped before its topics existed")
        return False
    starting.result()  # raises what the start raised
    return True


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no type hints
    def __init__(self, sink: DatasetSink) -> None:
        self._sink = sink

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._sink.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._sink.on_assigned(assigned)


def run_sink(settings: Settings) -> int:
    """Run one dataset sink until SIGINT/SIGTERM (several sinks share the partitions)."""
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sink = DatasetSink(settings)
        serve(sink.metrics.registry, sink_metrics_listener(settings))  # before joining the group
        await sink.run(stop)

    asyncio.run(main())
    return 0
