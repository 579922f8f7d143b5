"""Export throughput: `dataset export --format hf | chat-jsonl`, rows/s, against plain Parquet.

A dataset is built once from simulated chats (`bench_backfill.simulated_messages`: every
conversation closed, so every row final) and written as one Delta version of `turn_pairs` and
`conversations`. Timed, per format: the export as the command runs it (the final rows of the
version read, split, written with the card or the lines). The ceiling, in the same run: the
same version read and written as one plain Parquet file with pyarrow (no selection, no split).
Median of `--repeat` runs.
Run: .venv/bin/python -m benchmarks.bench_exports [--messages 300000] [--repeat 3]
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from benchmarks.bench_backfill import simulated_messages
from dataset import store
from dataset.exports.chat_jsonl import export_chat_jsonl
from dataset.exports.hf import export_hf
from dataset.exports.source import read_source
from dataset.rows import conversation_row, masker, pair_row
from features.batch import build_dataset
from features.labels import LabelledTable
from features.splits import SplitSpec

HERE = Path(__file__).resolve().parent
FORMATS: dict[str, tuple[LabelledTable, Callable[..., dict[str, int]]]] = {
    "hf": ("turn_pairs", export_hf),
    "chat_jsonl": ("conversations", export_chat_jsonl),
}


def write_dataset(root: str, messages: int) -> dict[str, int]:
    """One version of `turn_pairs` and `conversations` built from `messages` simulated messages."""
    pairs, conversations = build_dataset(simulated_messages(messages))
    mask = masker(True)
    rows = {
        "turn_pairs": [pair_row(pair, mask) for pair in pairs],
        "conversations": [conversation_row(conversation, mask) for conversation in conversations],
    }
    for table, table_rows in rows.items():
        store.write(root, table, store.rows_to_arrow(table, table_rows))
    return {table: len(table_rows) for table, table_rows in rows.items()}


def export_rate(root: str, fmt: str, out: Path) -> float:
    """Rows/s of one export as `messagehooks dataset export --format FMT` does it."""
    table, export = FORMATS[fmt]
    started = time.perf_counter()
    source = read_source(root, table, version=None, spec=SplitSpec())
    sizes = export(source, out)
    return sum(sizes.values()) / (time.perf_counter() - started)


def parquet_rate(root: str, table: str, out: Path) -> float:
    """Rows/s of the ceiling: the version read and written as one Parquet file, nothing else."""
    started = time.perf_counter()
    rows = store.read(store.open_table(root, table))
    pq.write_table(rows, out)
    return rows.num_rows / (time.perf_counter() - started)


def measure(root: str, scratch: Path, repeat: int) -> dict[str, float]:
    """Median rates of every format and its ceiling, measured side by side; their ratios."""
    result: dict[str, float] = {}
    for fmt, (table, _) in FORMATS.items():
        rates, ceilings = [], []
        for run in range(repeat):
            ceilings.append(parquet_rate(root, table, scratch / f"{table}-{run}.parquet"))
            rates.append(export_rate(root, fmt, scratch / f"{fmt}-{run}"))
        result[f"export_{fmt}_rows_per_s"] = statistics.median(rates)
        result[f"export_{fmt}_parquet_rows_per_s"] = statistics.median(ceilings)
        result[f"export_{fmt}_vs_parquet"] = statistics.median(rates) / statistics.median(ceilings)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "exports.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-exports-") as tmp:
        root, scratch = f"{tmp}/datasets", Path(tmp) / "out"
        scratch.mkdir()
        sizes = write_dataset(root, args.messages)
        result: dict[str, float] = {
            "export_pairs": float(sizes["turn_pairs"]),
            "export_conversations": float(sizes["conversations"]),
            **measure(root, scratch, args.repeat),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for fmt, (table, _) in FORMATS.items():
        print(
            f"export {fmt}: {result[f'export_{fmt}_rows_per_s']:,.0f} rows/s of {table} "
            f"({result[f'export_{fmt}_vs_parquet']:.2f} x plain Parquet, "
            f"{result[f'export_{fmt}_parquet_rows_per_s']:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()
