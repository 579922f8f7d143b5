"""What every training export reads: a pinned version's final rows, each with its chat's split.

The rows are the table's as stored (PII already masked by the sink), selected by
`dataset.store.load_final` and typed by the table's own schema again, so an export holds the
same columns and types as the table, plus `label_final` and `split`.
"""

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from dataset import store
from features.labels import LABEL_FINAL, LabelledTable, Selection
from features.splits import SPLITS, SplitSpec, splits_of
from messagehooks.pii import MASKS

SPLIT_COLUMN = "split"

LABELS: Mapping[LabelledTable, tuple[str, ...]] = {
    "turn_pairs": ("answered",),
    "conversations": ("escalated", "abandoned"),
}
"""The label columns of each table whose rates an export reports (drop-off = not answered)."""


@dataclass(frozen=True, slots=True)
class Source:
    """The rows an export writes, and where they came from."""

    table: LabelledTable
    rows: pa.Table
    selection: Selection
    spec: SplitSpec

    @property
    def version(self) -> int | None:
        """The version of `table` read."""
        return self.selection.versions.get(self.table)

    def split_rows(self) -> dict[str, pa.Table]:
        """The rows of each split that has any, in the order train, validation, test."""
        parts = {name: self.rows.filter(pc.equal(self.rows[SPLIT_COLUMN], name)) for name in SPLITS}
        return {name: part for name, part in parts.items() if part.num_rows}


def read_source(
    root: str,
    table: LabelledTable,
    *,
    version: int | None,
    spec: SplitSpec,
    include_open: bool = False,
) -> Source:
    """The final rows of `table` at `version` (latest: None), in event-time order, with their split.

    `load_final` selects on the few columns the labels need; the rows themselves stay Arrow
    (a round trip of nested columns through pandas cost more than the whole write).

    Raises:
        TableMissing: `table` has not been written yet.
        UnknownTable: `table` carries no labels.
    """
    table_spec = store.spec(table)
    key, time_column = table_spec.key, table_spec.time_column
    selection = store.load_final(table, version, root=root, include_open=include_open, columns=[key])
    rows = store.read(store.open_table(root, table, selection.versions[table]))
    if include_open:  # every row, marked
        final_keys = pa.array(selection.rows.loc[selection.rows[LABEL_FINAL], key], pa.string())
        final = pc.is_in(rows[key], value_set=final_keys)
    else:  # the rows selected, all final
        rows = rows.filter(pc.is_in(rows[key], value_set=pa.array(selection.rows[key], pa.string())))
        final = pa.array([True] * rows.num_rows, pa.bool_())
    rows = rows.append_column(pa.field(LABEL_FINAL, pa.bool_()), final)
    rows = rows.append_column(pa.field(SPLIT_COLUMN, pa.string()), split_column(rows["chat_id"], spec))
    rows = rows.sort_by([(time_column, "ascending"), (key, "ascending")])
    return Source(table, rows, selection, spec)


def split_column(chat_ids: pa.ChunkedArray, spec: SplitSpec) -> pa.Array:
    """The split of each chat id (each distinct id hashed once, by `features.splits`)."""
    distinct = pc.unique(chat_ids)
    splits = pa.array(splits_of(distinct.to_pylist(), spec), pa.string())
    return splits.take(pc.index_in(chat_ids, value_set=distinct))


def masking_counts(rows: pa.Table) -> dict[str, int]:
    """How many times each PII mask (``<EMAIL>``, ...) occurs in the text of `rows`, nested text included."""
    texts = [array for column in rows.columns for array in _strings(column)]
    return {
        mask: sum(int(pc.sum(pc.count_substring(text, mask)).as_py() or 0) for text in texts)
        for mask in MASKS
    }


def _strings(column: pa.ChunkedArray | pa.Array) -> list[pa.ChunkedArray | pa.Array]:
    """The string arrays inside `column`: itself, its list items, its struct fields."""
    kind = column.type
    if pa.types.is_string(kind):
        return [column]
    if pa.types.is_list(kind):
        return _strings(pc.list_flatten(column))
    if pa.types.is_struct(kind):
        return [found for i in range(kind.num_fields) for found in _strings(pc.struct_field(column, [i]))]
    return []


def label_rates(source: Source, rows: pa.Table) -> dict[str, float | None]:
    """The share of `rows` whose label column is true, per label of the table (None: no rows)."""
    rates: dict[str, float | None] = {}
    for label in LABELS[source.table]:
        values = rows[label].drop_null()
        rates[label] = round(pc.mean(values.cast(pa.float64())).as_py(), 4) if len(values) else None
    return rates
