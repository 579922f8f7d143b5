"""Opening the spool at start: a corrupt file is moved aside (kept, never deleted), not fatal.

A spool overwritten or damaged on disk ("file is not a database") would stop the ingest from
starting, and the records it accepted with a 202 would sit there unseen. Instead the file and
its ``-wal``/``-shm`` siblings are renamed to ``<name>.corrupt-<UTC time>`` (the siblings keep
their suffix, so SQLite still pairs them), one error line names both paths and how to recover
the rows, and the ingest starts on a fresh spool. Only corruption moves the file: a locked,
unreadable or full disk is an error as before. docs/operations.md, "Corrupt state".
"""

import contextlib
import logging
import sqlite3
import time
from pathlib import Path

from ingest.spool import Spool
from messagehooks.errors import SpoolCorrupt

logger = logging.getLogger(__name__)

_CORRUPTION_CODES = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_SIBLINGS = ("-wal", "-shm", "-journal")


def open_spool(path: Path) -> Spool:
    """The spool at `path`; a corrupt one is moved aside first and a fresh one is started."""
    try:
        return _open_checked(path)
    except (sqlite3.DatabaseError, SpoolCorrupt) as exc:
        if not is_corruption(exc):
            raise
        reason = str(exc)
    moved = move_aside(path)
    logger.error(
        "spool %s is corrupt (%s): moved it to %s and started a fresh spool; its records were NOT "
        "forwarded: try `sqlite3 %s .recover | sqlite3 recovered.sqlite3`, then put "
        "recovered.sqlite3 in place of the spool while the ingest is stopped and its spool empty "
        "(docs/operations.md, Corrupt state)",
        path,
        reason,
        moved,
        moved,
        extra={"spool": str(path), "moved_to": str(moved)},
    )
    return Spool(path)


def is_corruption(exc: BaseException) -> bool:
    """Whether `exc` says the file itself is damaged (not locked, unreadable, or the disk full)."""
    if isinstance(exc, SpoolCorrupt):
        return True
    return (
        isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorname", "") in _CORRUPTION_CODES
    )


def move_aside(path: Path, now: float | None = None) -> Path:
    """Rename `path` and its SQLite siblings to ``<name>.corrupt-<UTC time>``; returns the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    counter = 1
    while target.exists():  # two corrupt spools within a second: never overwrite the first
        counter += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{counter}")
    for suffix in _SIBLINGS:
        sibling = path.with_name(path.name + suffix)
        if sibling.exists():
            sibling.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target


def _open_checked(path: Path) -> Spool:
    if path.exists():
        # Read-only: a read-write connection to a file SQLite cannot read deletes the -wal and
        # -shm siblings when it closes, and with them the records a crash left in the WAL.
        read_only = f"{path.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(read_only, uri=True)) as db:
            (result,) = db.execute("PRAGMA quick_check(1)").fetchone()
        if result != "ok":
            raise SpoolCorrupt(f"integrity check: {result}")
    return Spool(path)
