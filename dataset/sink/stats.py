"""What one sink counts over its life, and how its logs name an error.

The counts are logged periodically, exported as metrics and read by the benchmarks.
"""

from dataclasses import dataclass


@dataclass
class SinkStats:
    """Counts of one sink's life: logged periodically and read by the benchmarks."""

    records: int = 0
    rows: int = 0
    duplicates: int = 0
    late: int = 0
    undecodable: int = 0
    reseeks: int = 0
    expired: int = 0
    skipped: int = 0
    commits: int = 0
    failed_commits: int = 0
    largest_commit: int = 0
    commit_seconds: float = 0.0
    compactions: int = 0
    compacted_files: int = 0
    vacuumed_files: int = 0
    failed_upkeeps: int = 0


def describe(exc: BaseException) -> str:
    """One line naming an error: its type and message."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"
