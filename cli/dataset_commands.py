"""The dataset's commands: ``dataset`` (versions, stats, export, compact), ``train``, ``backfill``.

Each reads the Delta tables at the settings' `dataset_root` (``--data-dir`` / ``--dataset-uri``),
resolved here and passed down: the dataset code reads no environment.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cli.flags import Commands, dataset_location, setting_flag
from messagehooks.errors import ConfigError, MessageHooksError
from messagehooks.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from features.training import TrainResult

TRAINING_FORMATS = ("hf", "chat-jsonl")
"""Formats of the final rows of a version with their splits (dataset/exports/)."""


def add_dataset(commands: Commands, settings: Settings) -> None:
    """``messagehooks dataset ACTION``."""
    dataset = commands.add_parser("dataset", help="inspect, export and compact the Delta tables")
    dataset_location(dataset, settings)
    actions = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    versions = actions.add_parser("versions", help="list the versions (commits) of a table")
    versions.add_argument("table", nargs="?", default="turn_pairs", help="table (default: %(default)s)")
    versions.add_argument(
        "--limit", type=int, default=20, help="list the newest N versions; 0 = all (default: %(default)s)"
    )
    stats = actions.add_parser(
        "stats", help="rows per table, pairs by role, answered rate, dead letters by reason"
    )
    export = actions.add_parser(
        "export",
        help="write a table (at a version) to parquet, jsonl or csv, or its final rows by split "
        "for training: hf (a Hugging Face datasets folder) or chat-jsonl (one conversation a line)",
    )
    export.add_argument(
        "table", nargs="?", default=None, help="messages, turn_pairs, conversations or dead_letters"
    )
    export.add_argument("out", type=Path, help="output file (hf: a folder)")
    export.add_argument("--version", type=int, default=None, help="table version (default: latest)")
    export.add_argument(
        "--format", choices=["parquet", "jsonl", "csv", *TRAINING_FORMATS], default="parquet", dest="fmt"
    )
    export.add_argument(
        "--table",
        dest="table_option",
        choices=["turn_pairs", "conversations"],
        help="hf: the table (default: turn_pairs, the drop-off task); chat-jsonl: conversations",
    )
    export.add_argument(
        "--include-open",
        action="store_true",
        help="hf, chat-jsonl: also export rows whose label is not final yet (marked by label_final)",
    )
    compact = actions.add_parser("compact", help="merge small files, vacuum files older than the retention")
    setting_flag(compact, "--retention-hours", "retention_hours", settings)
    for action in (versions, stats, export, compact):
        dataset_location(action, settings, inherited=True)


def add_train(commands: Commands, settings: Settings) -> None:
    """``messagehooks train``."""
    train = commands.add_parser("train", help="train and evaluate a baseline model on a dataset version")
    train.add_argument(
        "--task", choices=["dropoff", "escalation"], default=None, help="one task (default: both)"
    )
    train.add_argument("--version", type=int, default=None, help="table version (default: latest)")
    train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="save the models here: one skops file per task, model.json and a model card (README.md)",
    )
    train.add_argument("--folds", type=int, default=5, help="grouped-by-chat folds (default: %(default)s)")
    train.add_argument(
        "--first-turns", type=int, default=2, help="escalation: turns seen (default: %(default)s)"
    )
    train.add_argument(
        "--include-open",
        action="store_true",
        help="also learn from rows whose label is not final yet (conversations still open): biased",
    )
    dataset_location(train, settings)


def add_backfill(commands: Commands, settings: Settings) -> None:
    """``messagehooks backfill``."""
    backfill = commands.add_parser("backfill", help="rebuild the dataset tables in batch, as a new version")
    source = backfill.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-topic", help="a topic of recorded deliveries (landbot.raw) or landbot.messages"
    )
    source.add_argument(
        "--from-file", type=Path, help="JSONL of bodies or {body, headers, hook} (replay format)"
    )
    dataset_location(backfill, settings)


def run_dataset(settings: Settings, args: argparse.Namespace) -> int:
    """List versions, print stats, export or compact."""
    from dataset import maintenance, store

    root = settings.dataset_root
    if args.action in ("stats", "compact"):
        _require_local_root(root)  # the others already say that the table they read is missing
    if args.action == "versions":
        store.spec(args.table)
        entries = store.versions(root, args.table, limit=args.limit if args.limit > 0 else None)
        for entry in entries:
            version, when, operation, rows = (entry[k] for k in ("version", "timestamp", "operation", "rows"))
            sys.stdout.write(f"{version:>6}  {when}  {operation:<10} {rows:>8} rows\n")
        if args.limit > 0 and entries and entries[0]["version"] > 0:
            first, last = entries[0]["version"], entries[-1]["version"]
            sys.stderr.write(
                f"(the newest {len(entries)}: versions {first} to {last}; --limit 0 lists all)\n"
            )
    elif args.action == "stats":
        sys.stdout.write(json.dumps(maintenance.stats(root), indent=2) + "\n")
    elif args.action == "export" and args.fmt in TRAINING_FORMATS:
        _export_for_training(settings, args)
    elif args.action == "export":
        if args.table is None or args.table_option is not None or args.include_open:
            raise ConfigError(
                f"name the table: dataset export TABLE OUT --format {args.fmt} (every row as stored: "
                "--table and --include-open are for --format hf and chat-jsonl)"
            )
        rows = maintenance.export(root, args.table, args.out, version=args.version, fmt=args.fmt)
        sys.stderr.write(f"exported {rows} rows of {args.table} to {args.out}\n")
    else:
        report = maintenance.compact(root, retention_hours=settings.retention_hours)
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


def _export_for_training(settings: Settings, args: argparse.Namespace) -> None:
    """The final rows of a table version, each with its chat's split, as a training set."""
    from dataset.exports.chat_jsonl import export_chat_jsonl
    from dataset.exports.hf import export_hf
    from dataset.exports.source import read_source
    from features.splits import SplitSpec

    default = "turn_pairs" if args.fmt == "hf" else "conversations"
    named = {name for name in (args.table, args.table_option) if name is not None}
    table = named.pop() if len(named) == 1 else default if not named else None
    if table not in ("turn_pairs", "conversations") or (args.fmt == "chat-jsonl" and table != default):
        raise ConfigError(
            f"--format {args.fmt} exports {'turn_pairs or conversations' if args.fmt == 'hf' else default}, "
            f"not {' and '.join(sorted(named)) or table}"
        )
    source = read_source(
        settings.dataset_root,
        "turn_pairs" if table == "turn_pairs" else "conversations",
        version=args.version,
        spec=SplitSpec.from_settings(settings),
        include_open=args.include_open,
    )
    sizes = (export_hf if args.fmt == "hf" else export_chat_jsonl)(source, args.out)
    counts = ", ".join(f"{split} {rows}" for split, rows in sizes.items()) or "no rows"
    sys.stderr.write(
        f"exported {table} version {source.version} to {args.out} ({counts}); {source.selection.summary()}\n"
    )


def run_train(settings: Settings, args: argparse.Namespace) -> int:
    """Train baselines on the final rows' train split, print their scores (and save them with --out)."""
    from dataset.models import save
    from dataset.training import train_from_store
    from features.splits import SplitSpec
    from features.training import TASKS, NotEnoughData

    if args.folds < 2 or args.first_turns < 1:
        raise MessageHooksError(
            f"need --folds 2 or more and --first-turns 1 or more, got {args.folds}, {args.first_turns}"
        )
    results = []
    for task in [args.task] if args.task else TASKS:
        try:
            result = train_from_store(
                task,
                version=args.version,
                root=settings.dataset_root,
                folds=args.folds,
                first_turns=args.first_turns,
                include_open=args.include_open,
                split=SplitSpec.from_settings(settings),
            )
        except NotEnoughData as exc:
            raise MessageHooksError(f"not enough data to train: {exc}") from exc
        _print_result(result)
        results.append(result)
    if args.out is not None:
        sys.stdout.write(f"\nsaved to {save(results, args.out)}\n")
    return 0


def _print_result(result: "TrainResult") -> None:
    versions = ", ".join(f"{table} version {v}" for table, v in result.labels["versions"].items())
    rows, chats = result.split_rows, result.split_chats
    sys.stdout.write(
        f"task {result.task}: {result.rows} rows, {result.chats} chats, "
        f"positive rate {result.positive_rate:.3f}, {result.folds} folds grouped by chat; read {versions}\n"
        f"{result.labels['summary']}\n"
        f"split {result.split.seed!r} by chat: "
        + ", ".join(f"{name} {rows[name]} rows ({chats[name]} chats)" for name in rows)
        + " (validation unused)\n\n"
        "cross-validation inside the train split:\n"
    )
    sys.stdout.write(result.metrics.round(4).to_string() + "\n")
    sys.stdout.write(f"calibration error (out of fold): {result.calibration_error:.4f}\n")
    sys.stdout.write(f"\ntest split:\n{result.test_metrics.round(4).to_string()}\n\n")


def run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild the tables from a topic or a file."""
    from dataset.backfill import backfill

    backfill(settings, from_topic=args.from_topic, from_file=args.from_file, out=sys.stderr)
    return 0


def _require_local_root(root: str) -> None:
    """A dataset directory that does not exist is a wrong --data-dir, not an empty dataset.

    `up` and `sink` create it when they start (`create_local_root`), so it exists from the first
    second of a pipeline, before any commit. Object-store URLs are not checked.
    """
    if "://" not in root and not Path(root).is_dir():
        raise ConfigError(
            f"no dataset at {Path(root).resolve()}: the directory does not exist; give the --data-dir "
            f"(or {ENV_PREFIX}DATA_DIR) of a `messagehooks up` (it creates the directory), or --dataset-uri"
        )


def create_local_root(root: str) -> None:
    """Create a local dataset directory (an object store needs none)."""
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
