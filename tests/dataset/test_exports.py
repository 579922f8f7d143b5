"""`dataset export --format hf | chat-jsonl`: loaded back with `datasets` and `jsonschema` themselves."""

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from cli.main import main
from dataset import store
from dataset.exports.source import masking_counts, read_source
from devtools.simulate import SimulationOptions
from features.labels import LABEL_FINAL
from features.splits import SplitSpec, splits_of
from features.structs import FEATURE_VERSION
from messagehooks.pii import MASKS
from streams.sessions import SessionSettings
from tests.features.simulated import START, simulated_messages, stream_cut, write_dataset

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "chat-jsonl.v1.json"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No MESSAGEHOOKS_* of the caller; `datasets` offline with its cache in tmp_path; logging restored."""
    for name in list(os.environ):
        if name.startswith("MESSAGEHOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESSAGEHOOKS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    root_logger = logging.getLogger()
    handlers, level = root_logger.handlers[:], root_logger.level
    yield
    root_logger.handlers[:] = handlers
    root_logger.setLevel(level)


@pytest.fixture(scope="module")
def cut() -> tuple[list, list]:
    """Simulated chats cut while some conversations are open: final and not final rows, some PII."""
    messages = simulated_messages(SimulationOptions(chats=150, seed=5, pii=0.5))
    return stream_cut(messages, until=START + 400, settings=SessionSettings(conversation_gap=60.0))


@pytest.fixture
def root(tmp_path: Path, cut: tuple[list, list]) -> str:
    root = str(tmp_path / "data" / "datasets")
    write_dataset(root, *cut)
    return root


def _load(folder: Path, tmp_path: Path) -> dict[str, pd.DataFrame]:
    import datasets

    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    return {split: loaded[split].to_pandas() for split in loaded}


@pytest.mark.parametrize("table", ["turn_pairs", "conversations"])
def test_hf_folder_loads_with_datasets_as_the_final_rows_by_split(root, tmp_path, table):
    out = tmp_path / "hf"
    argv = ["dataset", "export", "--format", "hf", str(out)] + (
        ["--table", table] if table != "turn_pairs" else []
    )
    assert main(argv) == 0

    loaded = _load(out, tmp_path)
    final = store.load_final(table, root=root)
    key = store.spec(table).key
    assert final.left_out > 0 or table == "conversations"  # the cut holds open conversations
    assert sorted(loaded) == ["test", "train", "validation"]
    expected = final.rows.assign(split=splits_of(final.rows["chat_id"], SplitSpec()))
    for split, frame in loaded.items():
        assert list(frame.columns) == [*store.spec(table).schema.names, LABEL_FINAL, "split"]
        rows = expected[expected["split"] == split]
        assert sorted(frame[key]) == sorted(rows[key])
        assert (frame["split"] == split).all()
        assert frame[LABEL_FINAL].all()
    chats = [set(frame["chat_id"]) for frame in loaded.values()]
    assert sum(map(len, chats)) == len(set().union(*chats))  # no chat in two splits

    readme = (out / "README.md").read_text()
    assert f"FEATURE_VERSION: {FEATURE_VERSION}" in readme
    assert f"`{table}` version 0" in readme
    for split, frame in loaded.items():
        assert f"| {split} | {len(frame)} |" in readme


def test_hf_card_yaml_has_features_splits_and_sizes(root, tmp_path):
    import datasets
    import yaml

    out = tmp_path / "hf"
    assert main(["dataset", "export", "turn_pairs", str(out), "--format", "hf", "--include-open"]) == 0
    header = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    sizes = {split["name"]: split["num_examples"] for split in header["dataset_info"]["splits"]}
    assert sum(sizes.values()) == len(store.load("turn_pairs", root=root))  # every row, open included
    assert header["configs"][0]["data_files"][0]["path"] == "data/train-00000-of-00001.parquet"
    builder = datasets.load_dataset_builder(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert "prompt_text" in builder.info.features
    assert {name: info.num_examples for name, info in builder.info.splits.items()} == sizes
    loaded = _load(out, tmp_path)
    assert not all(frame[LABEL_FINAL].all() for frame in loaded.values())


def test_masking_counts_count_the_masks_the_table_holds(root):
    source = read_source(root, "conversations", version=None, spec=SplitSpec())
    counts = masking_counts(source.rows)
    transcripts = " ".join(t["text"] for rows in source.rows["transcript"].to_pylist() for t in rows)
    assert counts == {mask: transcripts.count(mask) for mask in MASKS}
    assert sum(counts.values()) > 0


def test_chat_jsonl_lines_follow_the_schema_and_round_trip_to_conversations(root, tmp_path):
    out = tmp_path / "chats.jsonl"
    assert main(["dataset", "export", str(out), "--format", "chat-jsonl"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    for line in lines:
        validator.validate(line)

    conversations = store.load_final("conversations", root=root).rows.set_index("conversation_id")
    assert sorted(line["conversation_id"] for line in lines) == sorted(conversations.index)
    for line in lines:
        row = conversations.loc[line["conversation_id"]]
        assert line["chat_id"] == row["chat_id"]
        assert line["split"] == splits_of([row["chat_id"]], SplitSpec())[0]
        assert line["outcome"] == {"escalated": row["escalated"], "abandoned": row["abandoned"]}
        assert len(line["messages"]) == row["turn_count"] == len(row["transcript"])
        roles = [message["role"] for message in line["messages"]]
        assert roles.count("user") == row["customer_turns"]
        assert sum(message["agent"] for message in line["messages"]) == row["agent_turns"]
        assert [m["content"] for m in line["messages"]] == [t["text"] for t in row["transcript"]]
    assert any(message["agent"] for line in lines for message in line["messages"])


def test_the_split_settings_decide_the_splits(root, tmp_path, monkeypatch):
    monkeypatch.setenv("MESSAGEHOOKS_SPLIT_PROPORTIONS", "0,0,1")
    out = tmp_path / "chats.jsonl"
    assert main(["dataset", "export", str(out), "--format", "chat-jsonl"]) == 0
    assert {json.loads(line)["split"] for line in out.read_text().splitlines()} == {"test"}


@pytest.mark.parametrize(
    ("before", "after", "needle"),
    [
        (["--format", "chat-jsonl"], ["--table", "turn_pairs"], "chat-jsonl exports conversations"),
        (["messages"], ["--format", "hf"], "hf exports turn_pairs or conversations, not messages"),
        ([], ["--format", "parquet"], "name the table"),
        (["messages"], ["--include-open", "--format", "csv"], "--include-open are for --format hf"),
    ],
)
def test_export_refuses_a_table_the_format_cannot_hold(root, tmp_path, capsys, before, after, needle):
    assert main(["dataset", "export", *before, str(tmp_path / "x"), *after]) == 2
    assert needle in capsys.readouterr().err
