"""A corrupt spool file is moved aside, byte for byte, with its siblings; the ingest gets a fresh one.

Real SQLite files in tmp_path, overwritten or damaged on disk; the logged recovery command is run
with the real `sqlite3` shell to show the rows it promises can be had back.
"""

import logging
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from ingest.spool import Spool
from ingest.spool_recovery import is_corruption, move_aside, open_spool
from messagehooks.kafka import ProducerRecord

RECORDS = [
    ProducerRecord("landbot.messages", f"chat-{i}".encode(), f'{{"n": {i}}}'.encode() * 40)
    for i in range(200)
]


def _spool_file(tmp_path: Path) -> Path:
    path = tmp_path / "spool" / "spool.sqlite3"
    spool = Spool(path)
    spool.append(RECORDS)
    spool.close()
    return path


def _moved(path: Path) -> list[Path]:
    """The moved spool files (not their -wal/-shm siblings)."""
    moved = path.parent.glob(f"{path.name}.corrupt-*")
    return sorted(p for p in moved if not p.name.endswith(("-wal", "-shm", "-journal")))


def test_garbage_is_moved_aside_intact_and_a_fresh_spool_serves(tmp_path, caplog):
    path = tmp_path / "spool" / "spool.sqlite3"
    path.parent.mkdir()
    garbage = bytes(range(256)) * 40
    path.write_bytes(garbage)
    (path.parent / "spool.sqlite3-wal").write_bytes(b"wal bytes")
    (path.parent / "spool.sqlite3-shm").write_bytes(b"shm bytes")
    with caplog.at_level(logging.ERROR, logger="ingest.spool_recovery"):
        spool = open_spool(path)
    try:
        assert spool.depth == 0
        spool.append(RECORDS[:1])
        assert [r for _, r in spool.peek(5)] == RECORDS[:1]
    finally:
        spool.close()
    (moved,) = _moved(path)
    assert moved.read_bytes() == garbage
    # The siblings keep SQLite's naming, so a recovery tool opens them with the moved file; the
    # WAL (committed records not yet in the main file) is kept as it was. The -shm is only an
    # index SQLite rebuilds from the WAL.
    assert Path(f"{moved}-wal").read_bytes() == b"wal bytes"
    assert Path(f"{moved}-shm").exists()
    (record,) = caplog.records
    line = record.getMessage()
    assert "\n" not in line
    assert str(path) in line
    assert str(moved) in line
    assert "file is not a database" in line
    assert f"sqlite3 {moved} .recover" in line


def test_a_damaged_page_is_caught_by_the_integrity_check(tmp_path, caplog):
    path = _spool_file(tmp_path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[6 * page : 6 * page + 8] = b"\xff" * 8  # the header of one of the table's leaf pages
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.ERROR, logger="ingest.spool_recovery"):
        open_spool(path).close()
    (moved,) = _moved(path)
    assert moved.read_bytes() == bytes(data)
    assert "integrity check" in caplog.records[0].getMessage()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 shell the log line names")
def test_the_rows_of_a_moved_spool_can_be_recovered_into_a_spool(tmp_path):
    path = _spool_file(tmp_path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[6 * page : 6 * page + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    open_spool(path).close()
    (moved,) = _moved(path)
    recovered = tmp_path / "recovered.sqlite3"
    # `.recover` where the shell has it; else `.dump`, committing what it could read (operations.md).
    script = subprocess.run(["sqlite3", str(moved), ".recover"], capture_output=True, text=True, check=False)
    if "sqlite_dbpage" in script.stdout + script.stderr or script.returncode != 0:
        dump = subprocess.run(["sqlite3", str(moved), ".dump"], capture_output=True, text=True, check=False)
        script.stdout = dump.stdout.replace("ROLLBACK; -- due to errors", "COMMIT;")
    subprocess.run(
        ["sqlite3", str(recovered)], input=script.stdout, text=True, check=True, capture_output=True
    )
    spool = Spool(recovered)
    try:
        rows = spool.peek(len(RECORDS))
    finally:
        spool.close()
    assert len(rows) > len(RECORDS) // 2  # one page of ~200 is lost, the rest comes back
    assert all(record == RECORDS[seq - 1] for seq, record in rows)  # each one intact


def test_a_healthy_spool_is_opened_as_it_is(tmp_path, caplog):
    path = _spool_file(tmp_path)
    with caplog.at_level(logging.ERROR, logger="ingest.spool_recovery"):
        spool = open_spool(path)
    try:
        assert spool.depth == len(RECORDS)
    finally:
        spool.close()
    assert _moved(path) == []
    assert caplog.records == []


def test_a_locked_spool_is_an_error_not_corruption(tmp_path):
    path = _spool_file(tmp_path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # e.g. a second ingest on the same data dir
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            sqlite3.connect(path, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not is_corruption(locked.value)
    path.write_bytes(b"not sqlite" * 100)
    with pytest.raises(sqlite3.DatabaseError) as garbage:
        sqlite3.connect(path).execute("SELECT COUNT(*) FROM spool").fetchone()
    assert is_corruption(garbage.value)


def test_moving_aside_never_overwrites_an_earlier_corrupt_file(tmp_path):
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"first")
    first = move_aside(path, now=1_800_000_000.0)
    path.write_bytes(b"second")
    second = move_aside(path, now=1_800_000_000.0)
    assert first.name == "spool.sqlite3.corrupt-20270115T080000Z"
    assert second != first
    assert (first.read_bytes(), second.read_bytes()) == (b"first", b"second")
    assert not path.exists()
