"""The sink's own upkeep of its tables: small files merged, the log checkpointed, old files deleted.

The sink commits each table about once a second, one small file per date partition each time:
40 minutes of `make run` left ~1,500 files in `messages`. It is the tables' regular writer, so
it also keeps them in shape, right after one of its commits of a table, by a schedule per table
(docs/dataset.md "Small files"): a compaction once it has written `compact_files` files since
the last one, a vacuum every `vacuum_interval` seconds.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dataset import maintenance, store
from dataset.tables import TableName
from messagehooks.settings import Settings

logger = logging.getLogger(__name__)

VACUUM_FLOOR_HOURS = 1.0
"""The sink never deletes a file younger than this, whatever MESSAGEHOOKS_RETENTION_HOURS says:
a commit of another sink in flight, or a reader of a version just replaced, still needs it."""


@dataclass(frozen=True)
class UpkeepPolicy:
    """When the sink compacts and vacuums (0 turns either off: `dataset compact` by hand)."""

    compact_files: int
    vacuum_interval: float
    retention_hours: float

    @classmethod
    def of(cls, settings: Settings) -> "UpkeepPolicy":
        """The policy the settings give (MESSAGEHOOKS_COMPACT_FILES, _VACUUM_INTERVAL, _RETENTION_HOURS)."""
        return cls(
            compact_files=settings.compact_files,
            vacuum_interval=settings.vacuum_interval,
            retention_hours=max(settings.retention_hours, VACUUM_FLOOR_HOURS),
        )


@dataclass(frozen=True)
class UpkeepDone:
    """What one run of a table's upkeep did."""

    compaction: maintenance.Compaction | None
    vacuumed: int | None
    seconds: float


class TableUpkeep:
    """One table's schedule; `run` blocks (call it in a thread, between two commits of the table)."""

    def __init__(
        self, root: str, table: TableName, policy: UpkeepPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.root = root
        self.table = table
        self.policy = policy
        self._clock = clock
        # Files written since the last compaction; None until counted (the table's files then).
        self.new_files: int | None = None
        self._next_vacuum = clock()  # the first chance: a stopped sink left files behind

    def committed(self, files: int) -> None:
        """Count the files one commit wrote (one per date partition it touched)."""
        if self.new_files is not None:
            self.new_files += files

    def due(self) -> bool:
        """Whether `run` has anything to do now."""
        return self._compaction_due() or self._vacuum_due()

    def run(self) -> UpkeepDone:
        """Compact and vacuum the table if due (blocking)."""
        started = self._clock()
        compaction = vacuumed = None
        if self.policy.compact_files > 0 and self.new_files is None:
            self.new_files = len(store.open_table(self.root, self.table).file_uris())
        if self._compaction_due():
            self.new_files = 0  # also when it fails: tried again after as many files again
            compaction = maintenance.compact_table(self.root, self.table)
        if self._vacuum_due():
            self._next_vacuum = self._clock() + self.policy.vacuum_interval
            vacuumed = maintenance.vacuum_table(
                self.root, self.table, retention_hours=self.policy.retention_hours
            )
        return UpkeepDone(compaction, vacuumed, self._clock() - started)

    def _compaction_due(self) -> bool:
        limit = self.policy.compact_files
        return limit > 0 and (self.new_files is None or self.new_files >= limit)

    def _vacuum_due(self) -> bool:
        return self.policy.vacuum_interval > 0 and self._clock() >= self._next_vacuum
