"""Time-derived features: latency, hour of day and weekday in UTC, medians."""

import statistics
from collections.abc import Sequence
from datetime import UTC, datetime


def latency(prompt_ts: float, response_ts: float) -> float:
    """Seconds from the end of a prompt turn to the start of its response turn."""
    return response_ts - prompt_ts


def hour_of_day(ts: float) -> int:
    """Hour (0-23, UTC) of an epoch timestamp in seconds."""
    return datetime.fromtimestamp(ts, tz=UTC).hour


def weekday(ts: float) -> int:
    """Day of the week (0 = Monday, UTC) of an epoch timestamp in seconds."""
    return datetime.fromtimestamp(ts, tz=UTC).weekday()


def hour_and_weekday(ts: float) -> tuple[int, int]:
    """``(hour_of_day(ts), weekday(ts))`` with one datetime conversion."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.hour, moment.weekday()


def median(values: Sequence[float]) -> float | None:
    """Median of `values`, or None when there are none."""
    return float(statistics.median(values)) if values else None
