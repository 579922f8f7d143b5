"""What `messagehooks dataset stats|export|compact` and the sink's upkeep do to the Delta tables.

Reads (statistics, exports of a version) and writes: compaction and vacuum commit to the tables
and delete files, so every function here does I/O on the dataset.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from dataset import store, tables
from messagehooks.errors import MessageHooksError

ExportFormat = Literal["parquet", "jsonl", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("parquet", "jsonl", "csv")

LOG_RETENTION_HOURS = 30 * 24
"""How long Delta keeps log entries (`delta.logRetentionDuration`, unset on our tables: 30 days)."""


def stats(root: str) -> dict[str, Any]:
    """Rows per table and the dataset's headline figures (missing tables count as empty)."""
    out: dict[str, Any] = {"root": root, "tables": {}}
    for name in tables.TABLES:
        if not store.exists(root, name):
            out["tables"][name] = {"version": None, "rows": 0}
            continue
        table = store.open_table(root, name)
        out["tables"][name] = {"version": int(table.version()), "rows": store.row_count(table)}
    if store.exists(root, "turn_pairs"):
        pairs = store.read(
            store.open_table(root, "turn_pairs"),
            ["pair_id", "conversation_id", "prompt_role", "response_role", "answered"],
        )
        by_roles = pairs.group_by(["prompt_role", "response_role"]).aggregate([([], "count_all")])
        out["pairs_by_role"] = sorted(
            (
                {"prompt_role": p, "response_role": r, "pairs": n}
                for p, r, n in zip(*(by_roles.column(i).to_pylist() for i in range(3)), strict=True)
            ),
            key=lambda item: -int(item["pairs"]),
        )
        answered = pc.sum(pairs.column("answered").cast(pa.int64())).as_py() or 0
        out["answered_rate"] = round(answered / pairs.num_rows, 4) if pairs.num_rows else None
        out.update(_final_pairs(root, pairs))
    if store.exists(root, "conversations"):
        conversations = store.read(store.open_table(root, "conversations"), ["escalated"])
        out["conversations"] = conversations.num_rows
        escalated = pc.sum(conversations.column("escalated").cast(pa.int64())).as_py() or 0
        out["escalation_rate"] = (
            round(escalated / conversations.num_rows, 4) if conversations.num_rows else None
        )
    if store.exists(root, "dead_letters"):
        reasons = store.read(store.open_table(root, "dead_letters"), ["reason"])
        counts = pc.value_counts(reasons.column("reason")).to_pylist()
        out["dead_letters_by_reason"] = {str(c["values"]): int(c["counts"]) for c in counts}
    return out


def _final_pairs(root: str, pairs: pa.Table) -> dict[str, Any]:
    """The pairs whose label is final (`features.labels`) and their answered rate.

    While conversations are open `answered_rate` counts their answered pairs but not yet their
    unanswered ones; this is the rate among pairs of closed conversations.
    """
    from features.labels import CONVERSATION_COLUMNS, mark_final

    if store.exists(root, "conversations"):
        conversations = store.read(store.open_table(root, "conversations"), CONVERSATION_COLUMNS).to_pandas()
    else:
        conversations = pd.DataFrame({name: [] for name in CONVERSATION_COLUMNS})
    frame = pairs.select(["pair_id", "conversation_id", "answered"]).to_pandas()
    final = frame[mark_final(frame, conversations)]
    rate = round(float(final["answered"].mean()), 4) if len(final) else None
    return {"final_pairs": len(final), "answered_rate_final": rate}


def export(root: str, table: str, out: Path, *, version: int | None, fmt: ExportFormat) -> int:
    """Write `table` (at `version`) to `out`; returns the rows written.

    The JSONL of `turn_pairs` is in the prompt/response shape of fine-tuning sets: one object
    per answered pair with its context turns and ids (unanswered pairs have no response).
    """
    if fmt not in EXPORT_FORMATS:
        raise MessageHooksError(f"unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    data = store.read(store.open_table(root, table, version))
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(data, out)
        return int(data.num_rows)
    if fmt == "csv":
        pacsv.write_csv(_flatten_nested(data), out)
        return int(data.num_rows)
    rows = data.to_pylist()
    if table == "turn_pairs":
        rows = [_fine_tuning_example(row) for row in rows if row["answered"]]
    with out.open("w", encoding="utf-8") as stream:
        for row in rows:
            stream.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return len(rows)


def compact(root: str, *, retention_hours: float) -> dict[str, Any]:
    """Merge small files of every table, then vacuum unreferenced files older than the retention.

    Compaction is a new version with the same rows; vacuum makes versions whose files it
    removed unreadable, so the retention is the time-travel window that stays guaranteed.
    """
    report: dict[str, Any] = {}
    for name in tables.TABLES:
        if not store.exists(root, name):
            continue
        merged = compact_table(root, name)
        vacuumed = vacuum_table(root, name, retention_hours=retention_hours)
        report[name] = {
            "version": int(store.open_table(root, name).version()),
            "files_added": merged.files_added,
            "files_removed": merged.files_removed,
            "files_vacuumed": vacuumed,
        }
    return report


@dataclass(frozen=True)
class Compaction:
    """What one compaction of a table did."""

    files_added: int
    files_removed: int


def compact_table(root: str, table: str) -> Compaction:
    """Merge a table's small files into few large ones, then checkpoint its log.

    The merge is a new version with the same rows (an OPTIMIZE commit: files removed and added,
    no data change). It conflicts with no append, so it is safe beside the sink: the offsets
    the sink records in the log (app transactions) are table state, carried by every later
    version and by the checkpoint, and the checkpoint bounds what a reader replays to open it.
    """
    delta = store.open_table(root, table)
    metrics = delta.optimize.compact()
    delta.create_checkpoint()
    return Compaction(int(metrics.get("numFilesAdded", 0)), int(metrics.get("numFilesRemoved", 0)))


def vacuum_table(root: str, table: str, *, retention_hours: float) -> int:
    """Delete the files a table stopped using more than `retention_hours` ago; returns how many.

    Those are files a compaction or an overwrite replaced (deleted `retention_hours` after that
    commit) and files of commits that never landed (`retention_hours` after they were written).
    Every version stays readable for `retention_hours` after it was written. A dry run first: a
    vacuum that finds nothing left to delete writes no version. Log entries older than the log's retention
    (Delta's default, 30 days) are expired too, unless the files are kept longer than that.
    """
    delta = store.open_table(root, table)
    options: dict[str, Any] = {
        "retention_hours": math.ceil(retention_hours),  # whole hours: round towards keeping
        "enforce_retention_duration": False,
        "full": True,  # also files no commit references (a failed commit's)
    }
    # The log names a replaced file until its tombstone expires (7 days), deleted or not.
    doomed = [path for path in delta.vacuum(dry_run=True, **options) if _on_disk(root, table, path)]
    if doomed:
        delta.vacuum(dry_run=False, **options)
    if retention_hours <= LOG_RETENTION_HOURS:  # else a version would lose its log before its files
        delta.cleanup_metadata()
    return len(doomed)


def _on_disk(root: str, table: str, path: str) -> bool:
    """Whether a file of the table is still there (assumed, in an object store: one request each)."""
    if "://" in root and not root.startswith("file://"):
        return True
    return Path(root.removeprefix("file://"), table, path).exists()


def _fine_tuning_example(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "pair_id": row["pair_id"],
        "conversation_id": row["conversation_id"],
        "context": row["context"],
        "prompt_role": row["prompt_role"],
        "prompt": row["prompt_text"],
        "response_role": row["response_role"],
        "response": row["response_text"],
        "latency_s": row["latency_s"],
    }


def _flatten_nested(data: pa.Table) -> pa.Table:
    """CSV has no lists or structs: such columns become JSON text."""
    columns = []
    for column in data.columns:
        if pa.types.is_list(column.type) or pa.types.is_struct(column.type):
            column = pa.array(
                [None if v is None else json.dumps(v, ensure_ascii=False) for v in column.to_pylist()]
            )
        columns.append(column)
    return pa.table(columns, names=data.column_names)
