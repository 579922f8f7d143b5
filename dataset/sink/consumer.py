"""The sink's consumer and run loop: fetch, take records in order, commit, stop after a drain.

`DatasetSink` owns the aiokafka consumer and the lock that keeps a rebalance
(`dataset.sink.listener`) from resetting positions or indexes while records are processed. The
parts it drives: `Positions` (contiguous reading), `RecordIntake` and the buffers, `TableCommits`
(Delta commits and upkeep), `DeltaOffsets` (the offsets recorded in the Delta log).
"""

import asyncio
import logging
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dataset import store
from dataset.rows import masker
from dataset.sink.buffers import RecordIntake, TableBuffer
from dataset.sink.commits import TableCommits
from dataset.sink.key_index import KeyIndex
from dataset.sink.listener import SinkRebalanceListener
from dataset.sink.offsets import DeltaOffsets
from dataset.sink.positions import Positions
from dataset.sink.stats import SinkStats, describe
from dataset.tables import SPECS, TableName
from dataset.upkeep import TableUpkeep, UpkeepPolicy
from messagehooks.engines import tansu_fixes
from messagehooks.health import SinkHealth, healthy_now, write_health
from messagehooks.kafka import TopicIncarnations
from messagehooks.metrics import Gauges, serve, sink_metrics
from messagehooks.ports import sink_metrics_listener
from messagehooks.restarts import Backoff
from messagehooks.settings import Settings

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 6.0
"""On a graceful stop, how long the sink reads on towards the topics' end (`up` waits 30 s).

`up` stops the ingest and the worker before the sink, so the topics are complete by then; with
the embedded, in-memory broker whatever the sink left in them would die with the broker.
"""

FETCH_MAX_WAIT_MS = 500
"""How long the broker may hold a fetch for new records (aiokafka's default, made explicit)."""

METADATA_MAX_AGE_MS = 5_000
"""How old the consumer's topic metadata may get. A topic the consumer saw deleted is left out of
its assignment until a refresh shows it again: aiokafka's default (5 min) left a topic created
again unread for minutes on Kafka (Tansu creates a topic when a Metadata request names it)."""


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
            for name, spec in SPECS.items()
        }
        self.offsets = DeltaOffsets(
            root=self.root, group=settings.sink_group, tables=self.tables, tansu=tansu_fixes(settings)
        )
        self.intake = RecordIntake(
            tables=self.tables,
            buffers=self.buffers,
            stats=self.stats,
            mask=masker(settings.pii_masking),
            allowed_lateness=settings.allowed_lateness,
            incarnations=self.offsets.incarnations,
        )
        self.positions = Positions(self.stats)
        self.gauges = Gauges()
        self.metrics = sink_metrics(self.stats, self.gauges)
        policy = UpkeepPolicy.of(settings)
        upkeep = {name: TableUpkeep(self.root, name, policy) for name in SPECS}
        self.commits = TableCommits(self.root, upkeep, self.stats, self.metrics)
        self.lock = asyncio.Lock()
        self.consumer: AIOKafkaConsumer | None = None
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
        self.consumer = consumer
        self.offsets.lookup = TopicIncarnations(self.settings.bootstrap)
        consumer.subscribe(list(self.tables), listener=SinkRebalanceListener(self))
        self._report(healthy_now("started"))
        if not await _start_unless_stopped(consumer, stop):
            self.offsets.lookup = None
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
                async with self.lock:  # not while a rebalance resets positions and indexes
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
                    # A pending rewind knows no position yet: the topics' end is not reached.
                    rewinding = self._rewind_due is not None
                    if stopping and not batch and not rewinding and await self.positions.caught_up(consumer):
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
            self.offsets.lookup = None

    async def _accept(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Buffer a partition's records, taken only contiguously (`Positions.accept`)."""
        await self.positions.accept(consumer, tp, records, self.intake.add)

    async def flush(self, *, force: bool) -> None:
        """Commit every table whose buffer is due (all non-empty ones when `force`)."""
        async with self.lock:
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
                *(
                    self.commits.commit(buffer, self.offsets.recorded(buffer.next_offsets), upkeep=not force)
                    for buffer in due
                ),
                return_exceptions=True,
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
                self._report(SinkHealth(False, f"Delta commits fail: {describe(failed[0])}", time.time()))
                self._rewind(delay)
            else:
                self._retry.reset()
                self._report(healthy_now())
            await self._commit_kafka(committed)

    def _refresh_gauges(self, consumer: AIOKafkaConsumer) -> None:
        self.gauges.values["seconds_since_commit"] = time.monotonic() - self.commits.last_commit
        self.gauges.lag = self.positions.lag(consumer)

    async def _commit_kafka(self, offsets: dict[TopicPartition, int]) -> None:
        """Kafka's committed offsets only show lag to operators; resuming uses the Delta log."""
        consumer = self.consumer
        assigned = consumer.assignment() if consumer is not None else set()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets or consumer is None:
            return
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # lag reporting must never stop the sink
            logger.warning("Kafka offset commit failed (lag reporting only): %s", exc)

    def forget(self) -> None:
        """Drop positions, buffered rows and cached ids (call it holding the lock)."""
        self.positions.expected.clear()
        for buffer in self.buffers.values():
            buffer.clear()
            buffer.index.clear()

    def _rewind(self, delay: float) -> None:
        """Forget what is buffered; the run loop reads again from the Delta log's offsets after `delay`.

        Until the seek succeeds no position is known, so `_accept` takes nothing: a record is
        neither skipped nor taken twice, however long the disk or the broker stays away. The
        loop, which fetches at least every 100 ms, checks after each fetch whether it is due.
        """
        self.forget()
        self._rewind_due = time.monotonic() + delay

    def rewind_soon(self) -> None:
        """Make a pending rewind due now (an assignment just sought part of the partitions)."""
        if self._rewind_due is not None:
            self._rewind_due = time.monotonic()

    async def _rewind_if_due(self) -> None:
        """Seek every assigned partition to the Delta log's offsets; retried with backoff on failure."""
        if self._rewind_due is None or time.monotonic() < self._rewind_due or self.consumer is None:
            return
        try:
            async with self.lock:
                await self.seek_committed(self.consumer, self.consumer.assignment())
        except Exception as exc:  # the broker or the table is away: keep the sink up, try again
            self.positions.expected.clear()
            delay = self._retry.next_delay()
            self._rewind_due = time.monotonic() + delay
            logger.warning("rewind failed (%s): next try in %.1f s", describe(exc), delay)
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
        """Seek each partition to where its table's log says (`DeltaOffsets.seek_committed`)."""
        await self.offsets.seek_committed(consumer, partitions, self.positions.expected)

    async def _check_incarnations(self, consumer: AIOKafkaConsumer) -> None:
        """Re-read from its start a topic deleted and created again under this running sink.

        Its records at the offsets this sink expects are not the ones it expects. What the sink
        holds is committed first, under the old incarnation (those records are gone from the
        topic); the key deduplication keeps the rows of the second read unique.
        """
        changed = await self.offsets.created_again({tp.topic for tp in self.positions.expected})
        if not changed:
            return  # deleted topics may come back: wait for their new incarnation
        await self.flush(force=True)
        async with self.lock:
            await self.offsets.read_again(consumer, changed, self.positions.expected)


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
