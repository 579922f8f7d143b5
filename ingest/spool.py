"""The durable on-disk spool: records Kafka could not take, fsynced before the 2xx.

SQLite in WAL mode with ``synchronous=FULL``: a committed insert survives kill -9 and power
loss. Records keep their insertion order (an autoincrement key) and are forwarded in it.
Calls are blocking: the ingest runs them in a worker thread.
"""

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from messagehooks.kafka import ProducerRecord


class Spool:
    """An ordered, durable queue of `ProducerRecord`s."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool ("
            " seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, key BLOB, value BLOB NOT NULL)"
        )
        self._depth = self._count()

    @property
    def depth(self) -> int:
        """Records waiting to be forwarded."""
        return self._depth

    def append(self, records: Sequence[ProducerRecord]) -> None:
        """Store `records` durably (one transaction, fsynced) before returning."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT INTO spool (topic, key, value) VALUES (?, ?, ?)",
                    [(r.topic, r.key, r.value) for r in records],
                )
                self._db.execute("COMMIT")
            except BaseException:
                # A full disk fails the insert or the commit: leave no transaction open behind,
                # or every later append would fail too, after the disk has room again.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._depth += len(records)

    def peek(self, limit: int) -> list[tuple[int, ProducerRecord]]:
        """The oldest `limit` records with their sequence numbers."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, key, value FROM spool ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [(seq, ProducerRecord(topic, key, value)) for seq, topic, key, value in rows]

    def remove_through(self, seq: int) -> None:
        """Forget every record up to and including `seq` (they are acknowledged by Kafka)."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._depth = self._count()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _count(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()
        return int(count)
