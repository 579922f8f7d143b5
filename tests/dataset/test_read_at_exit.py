"""Reads of the dataset leave no Python object to Arrow's threads: a short command exits cleanly.

deltalake reads a table through a filesystem written in Python unless given another one: every
buffer Arrow's I/O threads read is then a Python object, and such a thread can release the last
one just after the read returned. If the interpreter is exiting by then, the thread is ended
inside a C++ destructor and the process aborts: exit 134, "terminate called without an active
exception" (`store.dataset`, docs/dataset.md "Reading from Python").

Measured with deltalake's default read against a table being written: a read of `turn_pairs` then
exit aborted in 33 of 90 runs, so its 20 runs here all pass with a chance of about 1 in 10,000;
`dataset stats` aborted in 6 of 100 (it does more work after its last read), its 10 runs are there
for the command users run. With `store.read`: 0 of 60 and 0 of 40.
"""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pa_fs
import pytest

from dataset import store
from tests.dataset.test_maintenance import populate

COMMITS = 40
"""Versions of each table before the first run: files to read, as after a few minutes of `up`."""


def test_a_local_table_is_read_by_arrows_own_filesystem(tmp_path):
    root = str(tmp_path / "datasets")
    populate(root, commits=3)
    for table in store.TABLES:
        delta = store.open_table(root, table)
        assert not isinstance(store.dataset(delta).filesystem, pa_fs.PyFileSystem)
        key = store.spec(table).key
        assert store.read(delta).sort_by(key).equals(delta.to_pyarrow_table().sort_by(key))


@pytest.fixture
def live_data_dir(tmp_path: Path) -> Iterator[Path]:
    """A dataset of `COMMITS` versions a table, and a thread committing to every table like the sink."""
    data_dir = tmp_path / "data"
    root = str(data_dir / "datasets")
    rows = {table: store.rows_to_arrow(table, table_rows) for table, table_rows in populate(root).items()}
    for _ in range(COMMITS):
        for table, data in rows.items():
            store.write(root, table, data)
    for table in rows:
        store.open_table(root, table).create_checkpoint()  # as the sink's upkeep: opening stays fast
    stop, failures = threading.Event(), []

    def commit_until_stopped() -> None:
        try:
            while not stop.wait(0.1):
                for table, data in rows.items():
                    store.write(root, table, data)
        except Exception as exc:  # raised in the teardown below
            failures.append(exc)

    writer = threading.Thread(target=commit_until_stopped, name="test-writer")
    writer.start()
    try:
        yield data_dir
    finally:
        stop.set()
        writer.join(60)
    assert not failures, failures


@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "runs"),
    [
        pytest.param(["-m", "messagehooks", "dataset", "stats"], 10, id="dataset-stats"),
        # The narrowest window: nothing runs between the end of the read and the exit.
        pytest.param(
            ["-c", "from dataset import store; store.read(store.open_table('{root}', 'turn_pairs'))"],
            20,
            id="read-then-exit",
        ),
    ],
)
def test_a_short_read_exits_cleanly_while_the_table_is_written(live_data_dir, command, runs):
    env = {name: value for name, value in os.environ.items() if not name.startswith("MESSAGEHOOKS_")}
    env["MESSAGEHOOKS_DATA_DIR"] = str(live_data_dir)
    argv = [sys.executable, *(part.format(root=live_data_dir / "datasets") for part in command)]
    for run in range(1, runs + 1):
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"run {run} of {runs} exited {done.returncode}: {done.stderr[-2000:]}"
