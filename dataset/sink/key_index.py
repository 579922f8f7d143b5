"""Which ids a table already holds, so that the sink writes a repeated row once.

The index answers from memory; what it does not hold yet it reads from the Delta table in a
thread (`asyncio.to_thread`), so a record of a date not cached never stalls the event loop (the
consumer's heartbeats, the other partitions, a rebalance). The reads are plain functions below;
`KeyIndex` only keeps their results.
"""

import asyncio
import functools
import operator
from datetime import date

import pyarrow as pa
import pyarrow.dataset as ds

from dataset import store
from dataset.id_digests import IdDigests
from dataset.tables import PARTITION_COLUMN, TableSpec

MAX_CACHED_DATES = 8
"""Date partitions whose ids a table's index keeps in memory (older ones reload on demand)."""

Ident = tuple[str, ...]
"""A row's values of its table's id columns (`TableSpec.id_columns`): (chat, message id), (pair id)."""


def joined(ident: Ident) -> str:
    """One string per identity, never the same for two: the chat's length prefixes a pair."""
    if len(ident) == 1:
        return ident[0]
    scope, key = ident
    return f"{len(scope)}:{scope}{key}"


class KeyIndex:
    """The ids a table holds, per date partition, loaded from the table when first needed.

    A derived row's date comes from its event time, so a repeat of it always falls in the same
    partition as the original: checking that partition is exact. A message id does not fix the
    timestamp (the same `_raw.uuid` may come again with another one), so for `messages` the
    index also keeps digests of every id in the table and confirms a hit on another date. For
    `messages` it keeps each chat's newest event time too, from which a straggler is flagged `late`.
    A message is known by (chat id, message id), as in the stream (`TableSpec.scope`).

    Every method that may read the table is a coroutine: the read runs in a thread. The caller
    keeps other users of the index out meanwhile (the sink's lock), as it does between `seen`
    and `add`.
    """

    def __init__(self, root: str, spec: TableSpec, *, watermarks: bool = False) -> None:
        self._root = root
        self._spec = spec
        self._watermarks = watermarks
        self._keys: dict[date, set[str]] = {}
        self._newest: dict[date, dict[str, float]] = {}
        self._table_dates: set[date] | None = None
        self._across_dates = watermarks  # only message ids are independent of the event time
        self._digests: IdDigests | None = None

    def clear(self) -> None:
        """Forget everything (another sink may have written the partitions assigned now)."""
        self._keys.clear()
        self._newest.clear()
        self._table_dates = None
        self._digests = None

    async def seen(self, day: date, ident: Ident) -> bool:
        """Whether `ident` is in the table or pending in this sink (on any date, for messages)."""
        await self._ensure(day)
        key = joined(ident)
        if key in self._keys[day]:
            return True
        return (
            self._across_dates
            and (await self._ensure_digests()).maybe_seen(key)
            and await self._on_other_date(key, ident)
        )

    async def add(self, day: date, ident: Ident, chat: str | None = None, ts: float | None = None) -> None:
        """Record a row as pending (the caller commits it or clears the index)."""
        await self._ensure(day)
        key = joined(ident)
        self._keys[day].add(key)
        if self._across_dates:
            (await self._ensure_digests()).add(key)
        if self._table_dates is not None:
            self._table_dates.add(day)
        if chat is not None and ts is not None:
            newest = self._newest.setdefault(day, {})
            if ts > newest.get(chat, float("-inf")):
                newest[chat] = ts

    async def newest(self, chat: str, day: date) -> float | None:
        """The chat's newest event time in partitions from `day` on (all are loaded for it)."""
        for later in await self._dates_from(day):
            await self._ensure(later)
        times = [newest[chat] for d, newest in self._newest.items() if d >= day and chat in newest]
        return max(times, default=None)

    async def preload(self, day: date) -> None:
        """Load `day`'s ids now (at an assignment), before the first record asks for them."""
        await self._dates_from(day)
        await self._ensure(day)
        if self._across_dates:
            await self._ensure_digests()

    def evict(self) -> None:
        """Drop the oldest cached partitions (call only when nothing is pending)."""
        for day in sorted(self._keys)[:-MAX_CACHED_DATES]:
            self._keys.pop(day, None)
            self._newest.pop(day, None)

    async def _dates_from(self, day: date) -> list[date]:
        if self._table_dates is None:
            self._table_dates = await asyncio.to_thread(_table_dates, self._root, self._spec)
        return sorted(d for d in self._table_dates if d >= day)

    async def _ensure_digests(self) -> IdDigests:
        if self._digests is None:
            self._digests = await asyncio.to_thread(_digests, self._root, self._spec)
        return self._digests

    async def _on_other_date(self, key: str, ident: Ident) -> bool:
        """Confirm a digest hit: `key` pending or cached on some date, else present in the table."""
        if any(key in keys for keys in self._keys.values()):
            return True
        return await asyncio.to_thread(_in_table, self._root, self._spec, ident)

    async def _ensure(self, day: date) -> None:
        if day in self._keys:
            return
        keys, newest = await asyncio.to_thread(_partition, self._root, self._spec, day, self._watermarks)
        self._keys[day] = keys
        self._newest[day] = newest


# --- the reads from the table (blocking: each runs in a thread) ----------------------------------


def _table_dates(root: str, spec: TableSpec) -> set[date]:
    """The date partitions the table holds."""
    dates: set[date] = set()
    if store.exists(root, spec.name):
        table = store.open_table(root, spec.name)  # a corrupt log: TableCorrupt
        for partition in table.partitions():
            dates.add(date.fromisoformat(str(partition[PARTITION_COLUMN])))
    return dates


def _digests(root: str, spec: TableSpec) -> IdDigests:
    """Digests of every id in the table."""
    keys: list[str] = []
    if store.exists(root, spec.name):
        dataset = store.dataset(store.open_table(root, spec.name))
        keys = _joined_keys(spec, dataset.to_table(columns=list(spec.id_columns)))
    return IdDigests(keys)


def _in_table(root: str, spec: TableSpec, ident: Ident) -> bool:
    """Whether a row with `ident` is in the table, on any date."""
    if not store.exists(root, spec.name):
        return False
    dataset = store.dataset(store.open_table(root, spec.name))
    conditions = [ds.field(column) == value for column, value in zip(spec.id_columns, ident, strict=True)]
    return int(dataset.count_rows(filter=functools.reduce(operator.and_, conditions))) > 0


def _partition(root: str, spec: TableSpec, day: date, watermarks: bool) -> tuple[set[str], dict[str, float]]:
    """The ids of one date partition, and (with `watermarks`) each chat's newest event time in it."""
    keys: set[str] = set()
    newest: dict[str, float] = {}
    if store.exists(root, spec.name):
        columns = list(spec.id_columns)
        if watermarks:
            columns += [c for c in ("chat_id", spec.time_column) if c not in columns]
        dataset = store.dataset(store.open_table(root, spec.name))
        loaded = dataset.to_table(columns=columns, filter=ds.field(PARTITION_COLUMN) == day)
        keys.update(_joined_keys(spec, loaded))
        if watermarks:
            times = loaded.column(spec.time_column).to_pylist()
            for chat, ts in zip(loaded.column("chat_id").to_pylist(), times, strict=True):
                if ts > newest.get(chat, float("-inf")):
                    newest[chat] = ts
    return keys, newest


def _joined_keys(spec: TableSpec, loaded: pa.Table) -> list[str]:
    columns = [loaded.column(c).to_pylist() for c in spec.id_columns]
    return [joined(ident) for ident in zip(*columns, strict=True)]
