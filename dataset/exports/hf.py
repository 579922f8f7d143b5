"""`dataset export --format hf`: a folder `datasets.load_dataset(folder)` loads offline, with its splits.

One Parquet file per split under ``data/`` (the Hub's ``{split}-00000-of-00001.parquet`` naming)
and a dataset card, README.md, whose YAML header is what `datasets` reads (configs with their
data files, dataset_info with features and split sizes); the card's YAML is made by `datasets`
and `huggingface_hub` themselves from the Arrow schema, so it matches what they load.
"""

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dataset.exports.source import Source, label_rates, masking_counts
from features.structs import FEATURE_VERSION

DATA_DIR = "data"


def data_file(split: str) -> str:
    """Where the rows of `split` go, relative to the folder."""
    return f"{DATA_DIR}/{split}-00000-of-00001.parquet"


def export_hf(source: Source, out: Path) -> dict[str, int]:
    """Write `source` as a Hugging Face dataset folder at `out`; returns the rows per split."""
    parts = source.split_rows()
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    for stale in (out / DATA_DIR).glob("*.parquet"):  # a re-export never mixes in an old split
        stale.unlink()
    sizes: dict[str, int] = {}
    for split, rows in parts.items():
        pq.write_table(rows, out / data_file(split))
        sizes[split] = rows.num_rows
    (out / "README.md").write_text(card(source, parts), encoding="utf-8")
    return sizes


def card(source: Source, parts: dict[str, pa.Table]) -> str:
    """The dataset card: the YAML header `datasets` reads, and what a reader needs to trust the rows."""
    from datasets import DatasetInfo, Features, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    splits = SplitDict()
    for split, rows in parts.items():
        splits.add(SplitInfo(split, num_bytes=rows.nbytes, num_examples=rows.num_rows))
    info = DatasetInfo(features=Features.from_arrow_schema(source.rows.schema), splits=splits)
    header = DatasetCardData(pretty_name=f"messagehooks {source.table}")
    DatasetInfosDict({"default": info}).to_dataset_card_data(header)
    data_files = [{"split": split, "path": data_file(split)} for split in parts]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(header)
    return f"---\n{header.to_yaml()}\n---\n\n{_body(source, parts)}"


def _body(source: Source, parts: dict[str, pa.Table]) -> str:
    selection = source.selection
    versions = ", ".join(f"`{table}` version {version}" for table, version in selection.versions.items())
    rates = {split: label_rates(source, rows) for split, rows in parts.items()}
    facts: dict[str, Any] = {
        "table": source.table,
        "dataset versions read": versions,
        "FEATURE_VERSION": FEATURE_VERSION,
        "split seed": source.spec.seed,
        "split proportions (train, validation, test)": ", ".join(map(str, source.spec.proportions)),
        "rows": source.rows.num_rows,
        "labels": "final only" if not selection.include_open else "every row (`label_final` says which)",
        "left out": selection.summary(),
    }
    lines = [f"# messagehooks `{source.table}`", ""]
    lines += [
        "Exported by `messagehooks dataset export --format hf` from the Delta tables: PII is masked",
        "as the tables hold it, and every row of a chat is in one split (a keyed hash of its chat id).",
        "",
    ]
    lines += [f"- {name}: {value}" for name, value in facts.items()]
    lines += ["", "## Rows and label rates per split", "", "| split | rows | label rates |", "|---|---|---|"]
    lines += [
        f"| {split} | {rows.num_rows} | `{json.dumps(rates[split])}` |" for split, rows in parts.items()
    ]
    lines += ["", "## Masked personal data", "", "| mask | occurrences |", "|---|---|"]
    lines += [f"| `{mask}` | {count} |" for mask, count in masking_counts(source.rows).items()]
    return "\n".join(lines) + "\n"
