"""A compact memory of every id a table holds, across all its date partitions.

A row's date partition comes from its event time, and a message id (`_raw.uuid`) does not
change when a sender sends it again with another timestamp: checking only the row's own date
partition would keep one copy per date. Holding every id as a string costs ~100 bytes each;
this keeps an 8-byte digest per id in a sorted array (80 MB for ten million ids), answers
"maybe seen" exactly for unseen ids, and leaves the rare hit to be confirmed against the table.
"""

from collections.abc import Iterable

import numpy as np


def digest(key: str) -> int:
    """A 64-bit digest of `key`: Python's string hash, fast and stable within this process.

    The digests never leave the process that computed them, so the per-process salt is harmless.
    """
    return hash(key)


class IdDigests:
    """Digests of the ids in a table (loaded once) plus those added since."""

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._sorted = np.unique(np.fromiter((digest(k) for k in keys), dtype=np.int64))
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def maybe_seen(self, key: str) -> bool:
        """False: `key` is surely new. True: it is probably known (confirm before dropping a row)."""
        value = digest(key)
        if value in self._recent:
            return True
        at = int(np.searchsorted(self._sorted, value))
        return at < len(self._sorted) and int(self._sorted[at]) == value

    def add(self, key: str) -> None:
        """Remember `key` (pending or committed)."""
        self._recent.add(digest(key))
