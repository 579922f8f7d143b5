"""One table's buffer committed as one Delta version with its offsets, then the table's upkeep.

The write runs in a thread. Right after a table's commit, and before its next, the sink compacts
or vacuums that table when its schedule says so (`dataset.upkeep`), so small files do not pile
up; an upkeep that fails is counted and tried again on its schedule, never taken for a failed commit.
"""

import asyncio
import logging
import time
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from dataset import maintenance, store
from dataset.sink.buffers import TableBuffer
from dataset.sink.stats import SinkStats, describe
from dataset.tables import PARTITION_COLUMN, TableName
from dataset.upkeep import TableUpkeep
from messagehooks.metrics import SinkMetrics

logger = logging.getLogger(__name__)


class TableCommits:
    """Commits buffers to their tables (`store.write`) and keeps the tables in shape."""

    def __init__(
        self, root: str, upkeep: Mapping[TableName, TableUpkeep], stats: SinkStats, metrics: SinkMetrics
    ) -> None:
        self._root = root
        self.upkeep = upkeep
        self._stats = stats
        self._metrics = metrics
        self.last_commit = time.monotonic()

    async def commit(self, buffer: TableBuffer, offsets: Mapping[str, int], *, upkeep: bool) -> int:
        """Commit the buffer and `offsets` as one version, then keep the table in shape if that is due."""
        data = self._arrow(buffer)
        rows = data.num_rows
        started = time.perf_counter()
        version = await asyncio.to_thread(store.write, self._root, buffer.spec.name, data, offsets=offsets)
        elapsed = time.perf_counter() - started
        self._stats.commit_seconds += elapsed
        self._metrics.commit_seconds.labels(buffer.spec.name).observe(elapsed)
        self._metrics.table_rows.labels(buffer.spec.name).inc(rows)
        self.last_commit = time.monotonic()
        if buffer.spec.name == "messages":
            now = time.time()
            for row in buffer.rows:
                if row["received_at"]:
                    self._metrics.e2e_seconds.observe(max(0.0, now - row["received_at"]))
        self._stats.commits += 1
        self._stats.rows += rows
        self._stats.largest_commit = max(self._stats.largest_commit, rows)
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
            self._stats.failed_upkeeps += 1
            logger.warning("upkeep of %s failed: %s", upkeep.table, describe(exc))
            return
        merged = done.compaction or maintenance.Compaction(0, 0)
        if merged.files_removed:
            self._stats.compactions += 1
            self._stats.compacted_files += merged.files_removed
        self._stats.vacuumed_files += done.vacuumed or 0
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
                    self._stats.undecodable += 1
                    logger.error(
                        "row skipped: does not fit the %s schema",
                        buffer.spec.name,
                        extra={"id": row.get(buffer.spec.key), "error": str(exc)[:200]},
                    )
                else:
                    good.append(row)
            buffer.rows[:] = good
            return store.rows_to_arrow(buffer.spec.name, good)
