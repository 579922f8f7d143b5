"""The dataset store: where the tables live, their writes and their reads (specs: `dataset.tables`).

Notebooks use `load` (every row) and `load_final` (rows to learn from); `messagehooks dataset ...`
and the sink use the rest.
"""

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from dataset.corruption import table_error
from dataset.tables import PARTITION_COLUMN, SPECS, TABLES, TableSpec
from messagehooks.errors import MessageHooksError
from messagehooks.errors import TableCorrupt as TableCorrupt  # callers catch the three as store.*
from messagehooks.errors import TableMissing as TableMissing
from messagehooks.errors import UnknownTable as UnknownTable

if TYPE_CHECKING:
    from features.labels import LabelledTable, Selection


def spec(table: str) -> TableSpec:
    """The spec of `table`, or a clear error naming the valid tables."""
    for name, table_spec in SPECS.items():
        if name == table:
            return table_spec
    raise UnknownTable(f"unknown table {table!r}; the tables are {', '.join(TABLES)}")


def table_uri(root: str, table: str) -> str:
    """Location of `table` under the dataset root (a directory or an object-store URL)."""
    spec(table)
    return f"{root.rstrip('/')}/{table}"


def event_date(epoch_seconds: float) -> date:
    """The UTC date a row is partitioned by."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).date()


def open_table(root: str, table: str, version: int | None = None) -> DeltaTable:
    """The Delta table, at `version` if given.

    Raises:
        TableMissing: nothing has been written to it yet.
        TableCorrupt: its log cannot be read (names the file at fault and what to do).
    """
    uri = table_uri(root, table)
    try:
        return DeltaTable(uri, version=version)
    except TableNotFoundError as exc:
        raise TableMissing(
            f"no Delta table at {uri} yet (nothing written to {table!r}): the pipeline writes it "
            "(`make run`), or point MESSAGEHOOKS_DATA_DIR or MESSAGEHOOKS_DATASET_URI at a dataset"
        ) from exc
    except (DeltaError, OSError) as exc:
        corrupt = table_error(uri, table, exc)
        if version is not None and not corrupt.files and _readable(uri):
            # deltalake has no error class for a version the log lacks: the latest reads, so it is that.
            raise MessageHooksError(f"table {table!r} has no version {version}: {exc}") from exc
        raise corrupt from exc


def _readable(uri: str) -> bool:
    """Whether the table's latest version opens (told apart from a version it does not have)."""
    try:
        DeltaTable(uri)
    except (DeltaError, OSError):
        return False
    return True


def check_tables(root: str) -> None:
    """Open every table written so far, so that a corrupt log stops a process at its start.

    Raises:
        TableCorrupt: a table's log cannot be read (the message names the file and the fix).
    """
    for name in TABLES:
        if exists(root, name):
            open_table(root, name)


def exists(root: str, table: str) -> bool:
    """Whether `table` has at least one version."""
    return DeltaTable.is_deltatable(table_uri(root, table))


def rows_to_arrow(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows (dicts with every column) as an Arrow table of the table's exact schema."""
    return pa.Table.from_pylist(list(rows), schema=spec(table).schema)


def write(
    root: str,
    table: str,
    data: pa.Table,
    *,
    offsets: Mapping[str, int] | None = None,
    mode: Literal["append", "overwrite"] = "append",
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Commit `data` as one new version; returns it.

    `offsets` maps application ids to versions recorded in the same commit (Delta's
    application transactions, `txn`), which is how the sink makes its Kafka progress atomic with
    its rows (docs/dataset.md).
    """
    transactions = [Transaction(app_id, version) for app_id, version in (offsets or {}).items()]
    uri = table_uri(root, table)
    try:  # write through the opened table: its state then is the commit (one load, not two)
        target: str | DeltaTable = open_table(root, table)
    except TableMissing:
        target = uri
    try:
        write_deltalake(
            target,
            data,
            partition_by=[PARTITION_COLUMN],
            mode=mode,
            schema_mode="overwrite" if mode == "overwrite" else None,
            commit_properties=CommitProperties(
                app_transactions=transactions or None,
                custom_metadata={k: str(v) for k, v in (metadata or {}).items()} or None,
            ),
        )
    except DeltaError as exc:
        corrupt = table_error(uri, table, exc)
        if corrupt.files:  # a torn log, not a conflict or a schema error: say which file
            raise corrupt from exc
        raise
    return int((target if isinstance(target, DeltaTable) else open_table(root, table)).version())


def transaction_versions(root: str, table: str, app_ids: Sequence[str]) -> list[int | None]:
    """The version last committed for each app id in `table` (None: never, or no table yet)."""
    if not exists(root, table):
        return [None] * len(app_ids)
    delta = open_table(root, table)
    versions = [delta.transaction_version(app_id) for app_id in app_ids]
    return [None if version is None else int(version) for version in versions]


def dataset(delta: DeltaTable) -> ds.Dataset:
    """A table version as a pyarrow dataset, read by pyarrow's own filesystem when the table is local.

    deltalake's default is a filesystem written in Python: every buffer Arrow's I/O threads read
    is then a Python object, and such a thread can drop the last one after the read returned. If
    the interpreter is exiting by then, the thread is ended inside a C++ destructor and the
    process aborts ("terminate called without an active exception", exit code 134; docs/dataset.md,
    "Reading from Python"). A native buffer needs no interpreter to be released.
    """
    return delta.to_pyarrow_dataset(filesystem=_local_filesystem(delta))


def read(delta: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """The rows of a table version (`columns` only, if given), through `dataset`."""
    return dataset(delta).to_table(columns=columns)


def _local_filesystem(delta: DeltaTable) -> pa_fs.FileSystem | None:
    """A local table's directory as a pyarrow filesystem; None (deltalake's own) for an object store."""
    if not delta.table_uri.startswith("file://"):
        return None
    filesystem, path = pa_fs.FileSystem.from_uri(delta.table_uri)
    return pa_fs.SubTreeFileSystem(path, filesystem)


def row_count(table: DeltaTable) -> int:
    """Rows of a table version, from the log's per-file statistics (no data file is read)."""
    # deltalake returns arro3 tables: pyarrow reads them through the Arrow C stream interface.
    actions = pa.table(table.get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def load(
    table: str,
    version: int | None = None,
    *,
    root: str,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """One dataset table under `root` as a pandas DataFrame, at `version` (time travel) or the latest.

    The caller resolves `root` (a notebook: ``load_settings().dataset_root``); nothing here reads
    the environment. To learn from labels, use `load_final`: this returns every row, final or not.
    """
    frame: pd.DataFrame = read(open_table(root, table, version), columns).to_pandas()
    return frame


def load_final(
    table: "LabelledTable",
    version: int | None = None,
    *,
    root: str,
    include_open: bool = False,
    columns: list[str] | None = None,
) -> "Selection":
    """The rows of `turn_pairs` or `conversations` whose labels a model can trust.

    Rows whose label is not final yet, or that started after the earliest open conversation,
    are left out and counted (`features.labels`; docs/dataset.md, "Final labels"). The other
    table is read at its latest version, which is never older than `version`; the selection
    names both versions.

    Args:
        table: "turn_pairs" (drop-off labels) or "conversations" (escalation labels).
        version: The version of `table` (default: the latest).
        root: The dataset root (the caller's settings resolve it).
        include_open: Keep every row, with its `label_final` flag; only count the others.
        columns: Only these columns of `table` (with those the selection reads: its key and
            `features.labels.PAIR_COLUMNS` or `CONVERSATION_COLUMNS`); default: all.

    Raises:
        TableMissing: `table` has not been written yet.
    """
    from features.labels import CONVERSATION_COLUMNS, PAIR_COLUMNS, select_final

    if table not in ("turn_pairs", "conversations"):
        raise UnknownTable(f"labels are in turn_pairs and conversations, not in {table!r}")
    other, other_columns = (
        ("conversations", CONVERSATION_COLUMNS) if table == "turn_pairs" else ("turn_pairs", PAIR_COLUMNS)
    )
    delta = open_table(root, table, version)
    own = PAIR_COLUMNS if table == "turn_pairs" else CONVERSATION_COLUMNS
    wanted = None if columns is None else list(dict.fromkeys([*own, *columns]))
    frames: dict[str, pd.DataFrame] = {table: read(delta, wanted).to_pandas()}
    versions: dict[str, int | None] = {table: int(delta.version()), other: None}
    if exists(root, other):
        other_delta = open_table(root, other)
        frames[other] = read(other_delta, other_columns).to_pandas()
        versions[other] = int(other_delta.version())
    else:
        frames[other] = pd.DataFrame({name: [] for name in other_columns})
    selection = select_final(table, frames["turn_pairs"], frames["conversations"], include_open=include_open)
    return replace(selection, versions=versions)


def versions(root: str, table: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The versions of `table` (the newest `limit`, or all), oldest first: version, time, operation, rows.

    Only the commits listed are read: the sink makes thousands an hour (docs/dataset.md).
    """
    history = open_table(root, table).history(limit)
    out = []
    for entry in sorted(history, key=lambda e: int(e.get("version", 0))):
        metrics = entry.get("operationMetrics") or {}
        out.append(
            {
                "version": int(entry.get("version", 0)),
                "timestamp": datetime.fromtimestamp(entry.get("timestamp", 0) / 1000, tz=UTC).isoformat(),
                "operation": entry.get("operation", ""),
                "rows": int(metrics.get("num_added_rows", metrics.get("numOutputRows", 0)) or 0),
            }
        )
    return out
