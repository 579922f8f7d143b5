"""The dataset sink's health, shared with the ingest's /readyz through a small file.

While the sink cannot commit (a full disk, an unreachable object store), records the ingest
acknowledges live only in the broker: /readyz must say so. The sink rewrites one fixed-size
file in place (`HEALTH_FILE_BYTES`, padded), so once created it never needs a free block -
it still reports a full disk on that disk. The ingest reads it when `READY_NEEDS_SINK` is set.
"""

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

logger = logging.getLogger(__name__)

HEALTH_FILE_BYTES = 1024
_DETAIL_CHARS = 600


@dataclass(frozen=True)
class SinkHealth:
    """What the sink last reported: healthy or not, why, and when."""

    healthy: bool
    detail: str
    at: float


def write_health(path: Path, health: SinkHealth) -> bool:
    """Overwrite `path` in place with `health`; False (logged) if the file cannot be written."""
    payload = orjson.dumps(
        {
            "healthy": health.healthy,
            "detail": health.detail[:_DETAIL_CHARS],
            "at": health.at,
            "pid": os.getpid(),
        }
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(descriptor, payload.ljust(HEALTH_FILE_BYTES)[:HEALTH_FILE_BYTES], 0)
        finally:
            os.close(descriptor)
    except OSError as exc:
        logger.warning("could not write the sink's health file %s: %s", path, exc)
        return False
    return True


def read_health(path: Path) -> SinkHealth | None:
    """The sink's last report, or None when it has not reported (no file, or unreadable)."""
    try:
        data = orjson.loads(path.read_bytes().rstrip())
        return SinkHealth(bool(data["healthy"]), str(data["detail"]), float(data["at"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def healthy_now(detail: str = "Delta commits succeed") -> SinkHealth:
    """A healthy report stamped now."""
    return SinkHealth(True, detail, time.time())
