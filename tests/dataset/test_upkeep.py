"""The sink's upkeep schedule on real Delta tables: an hour of the sink's commits, compressed.

The sink writes each table the way `_commit` does (`store.write` with the partitions' next offsets
as app transactions) and, after each commit, runs `TableUpkeep` when it is due. No broker: the
commits are what makes small files, and these tests make them as fast as Delta allows.
"""

import json
import math
import threading
from pathlib import Path

import pytest

from dataset import maintenance, store
from dataset.rows import masker, message_row
from dataset.upkeep import VACUUM_FLOOR_HOURS, TableUpkeep, UpkeepPolicy
from tests.factories import BASE_TS, second_of_messages

MASK = masker(True)
APP_ID = "messagehooks-sink:landbot.messages:0:cluster/topic"

HOUR_OF_COMMITS = 2250
"""The sink's commits of `messages` in an hour of `make run`: ~1,500 files in 40 minutes (issue 15)."""
ROWS_PER_COMMIT = 6
MIDNIGHT = math.ceil(BASE_TS / 86_400) * 86_400
CHECKPOINT_INTERVAL = 100
"""delta-rs checkpoints every 100 commits by itself (`delta.checkpointInterval`'s default)."""


def _commit(root: str, upkeep: TableUpkeep, n: int) -> None:
    """The sink's commit number `n`: six messages of one second, then its upkeep if due."""
    ts = MIDNIGHT - HOUR_OF_COMMITS // 2 * 1.6 + n * 1.6  # the hour spans midnight: two partitions
    messages = second_of_messages(n, ts, ROWS_PER_COMMIT)
    rows = [
        message_row(m, late=False, partition=0, offset=n * ROWS_PER_COMMIT + j, mask=MASK)
        for j, m in enumerate(messages)
    ]
    data = store.rows_to_arrow("messages", rows)
    store.write(root, "messages", data, offsets={APP_ID: (n + 1) * ROWS_PER_COMMIT})
    upkeep.committed(files=1)  # one date per commit
    if upkeep.due():
        upkeep.run()


def _live_files(root: str) -> int:
    return len(store.open_table(root, "messages").file_uris())


def _data_files(root: str) -> list[Path]:
    return [p for p in Path(root, "messages").rglob("*.parquet") if "_delta_log" not in p.parts]


@pytest.mark.slow
def test_an_hour_of_sink_commits_keeps_the_file_count_bounded_and_every_row_and_offset(tmp_path):
    root = str(tmp_path / "ds")
    policy = UpkeepPolicy(compact_files=100, vacuum_interval=600.0, retention_hours=168.0)
    upkeep = TableUpkeep(root, "messages", policy)
    peak = 0
    for n in range(HOUR_OF_COMMITS):
        if upkeep.due() or n % 50 == 0:  # the count peaks right before a compaction
            peak = max(peak, _live_files(root) if store.exists(root, "messages") else 0)
        _commit(root, upkeep, n)
        if n == 10:
            pinned = store.open_table(root, "messages").version()

    # At most one large file per date partition (2) plus the files written since the last compaction.
    assert peak <= policy.compact_files + 2
    assert _live_files(root) <= policy.compact_files + 2
    # Without the upkeep the table would hold one file per commit.
    assert len(_data_files(root)) > HOUR_OF_COMMITS
    # Same rows, once each, and the offset of the last commit: what the sink resumes from.
    ids = store.load("messages", root=root, columns=["message_id"])["message_id"].tolist()
    assert len(ids) == HOUR_OF_COMMITS * ROWS_PER_COMMIT
    assert set(ids) == {f"m{n}.{j}" for n in range(HOUR_OF_COMMITS) for j in range(ROWS_PER_COMMIT)}
    assert store.transaction_versions(root, "messages", [APP_ID]) == [HOUR_OF_COMMITS * ROWS_PER_COMMIT]
    # A version pinned early in the hour still reads: the replaced files wait for the retention.
    assert store.row_count(store.open_table(root, "messages", pinned)) == 11 * ROWS_PER_COMMIT
    assert len(store.load("messages", pinned, root=root)) == 11 * ROWS_PER_COMMIT
    # Opening the table replays at most a checkpoint interval of commits.
    head = store.open_table(root, "messages").version()
    last = json.loads(Path(root, "messages", "_delta_log", "_last_checkpoint").read_text())
    assert head - int(last["version"]) < CHECKPOINT_INTERVAL
    # `dataset versions` reads the newest commits only.
    newest = store.versions(root, "messages", limit=20)
    assert [v["version"] for v in newest] == list(range(head - 19, head + 1))
    assert "OPTIMIZE" in {v["operation"] for v in store.versions(root, "messages", limit=CHECKPOINT_INTERVAL)}


class Clock:
    """A clock the test moves: the schedule's time is its own, not the wall's."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_schedule_counts_the_tables_files_at_start_then_the_files_written(tmp_path):
    root = str(tmp_path / "ds")
    for n in range(5):  # a table left by an earlier sink
        _commit(root, TableUpkeep(root, "messages", UpkeepPolicy(0, 0, 168)), n)
    upkeep = TableUpkeep(
        root, "messages", UpkeepPolicy(compact_files=4, vacuum_interval=0, retention_hours=168)
    )
    assert upkeep.due()  # its files are not counted yet
    done = upkeep.run()
    assert done.compaction is not None
    assert done.compaction.files_removed == 5
    assert done.vacuumed is None
    assert (_live_files(root), upkeep.new_files) == (1, 0)
    for files in (1, 2):
        upkeep.committed(files)
    assert not upkeep.due()
    upkeep.committed(1)
    assert upkeep.due()


def test_vacuums_come_at_the_interval_and_keep_what_the_retention_keeps(tmp_path):
    root = str(tmp_path / "ds")
    clock = Clock()
    upkeep = TableUpkeep(root, "messages", UpkeepPolicy(0, vacuum_interval=600, retention_hours=0), clock)
    for n in range(3):
        _commit(root, TableUpkeep(root, "messages", UpkeepPolicy(0, 0, 168)), n)
    maintenance.compact_table(root, "messages")
    assert upkeep.due()  # the first chance after a start
    assert upkeep.run().vacuumed == 3  # the three small files the compaction replaced
    assert not upkeep.due()
    clock.now += 599
    assert not upkeep.due()
    clock.now += 1
    assert upkeep.due()
    version = store.open_table(root, "messages").version()
    assert upkeep.run().vacuumed == 0
    assert store.open_table(root, "messages").version() == version  # nothing to delete: no commit


def test_the_sink_never_vacuums_files_younger_than_an_hour():
    from messagehooks.settings import Settings

    assert UpkeepPolicy.of(Settings(retention_hours=0)).retention_hours == VACUUM_FLOOR_HOURS
    assert UpkeepPolicy.of(Settings(retention_hours=48)).retention_hours == 48


@pytest.mark.parametrize("retention_hours", [0, 1])
def test_a_vacuum_deletes_an_orphan_file_only_past_the_retention(tmp_path, retention_hours):
    """A file no commit references (a commit that never landed) goes after the retention too."""
    root = str(tmp_path / "ds")
    _commit(root, TableUpkeep(root, "messages", UpkeepPolicy(0, 0, 168)), 0)
    orphan = next(iter(_data_files(root))).with_name("part-orphan.snappy.parquet")
    orphan.write_bytes(b"a data file whose commit never landed")
    removed = maintenance.vacuum_table(root, "messages", retention_hours=retention_hours)
    assert removed == (1 if retention_hours == 0 else 0)
    assert orphan.exists() == (retention_hours > 0)
    assert _live_files(root) == 1


def test_a_compaction_beside_the_sinks_appends_conflicts_with_none_of_them(tmp_path):
    """`dataset compact` by hand while the sink runs: OPTIMIZE and appends land in any order."""
    root = str(tmp_path / "ds")
    _commit(root, TableUpkeep(root, "messages", UpkeepPolicy(0, 0, 168)), 0)
    appending = threading.Event()
    appending.set()
    merged: list[int] = []
    errors: list[BaseException] = []

    def compact_meanwhile() -> None:
        while appending.is_set():
            try:
                merged.append(maintenance.compact_table(root, "messages").files_removed)
            except BaseException as exc:  # whatever it was: the test reports it
                errors.append(exc)

    compactor = threading.Thread(target=compact_meanwhile)
    compactor.start()
    try:
        for n in range(1, 100):
            _commit(root, TableUpkeep(root, "messages", UpkeepPolicy(0, 0, 168)), n)
    finally:
        appending.clear()
        compactor.join()
    assert errors == []
    assert sum(1 for files in merged if files) >= 2  # it did merge, between the appends
    ids = store.load("messages", root=root, columns=["message_id"])["message_id"].tolist()
    assert sorted(ids) == sorted(f"m{n}.{j}" for n in range(100) for j in range(ROWS_PER_COMMIT))
    assert store.transaction_versions(root, "messages", [APP_ID]) == [100 * ROWS_PER_COMMIT]
