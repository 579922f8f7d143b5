"""Baseline training: grouped folds never leak a chat, models beat the dummy, the CLI reports."""

import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.batch import build_dataset
from features.records import FEATURE_VERSION
from features.training import NotEnoughData, grouped_folds, save, train, train_from_store
from ingest.validation import normalize
from messagehooks import store
from messagehooks.cli import main
from messagehooks.settings import Hook
from streams.tables import conversation_row, masker, pair_row
from tests.integration.traffic import conversation_traffic


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> str:
    """A Delta dataset of 300 simulated chats, written as the sink writes it (masked rows)."""
    raw = conversation_traffic(300, seed=3, start=1_790_000_000.0)
    messages = [
        normalize(
            json.dumps(m).encode(),
            hook=Hook("t"),
            received_at=0.0,
            request_id="",
        )
        for m in raw
    ]
    pairs, conversations = build_dataset(messages)
    root = str(tmp_path_factory.mktemp("dataset"))
    mask = masker(True)
    store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", [pair_row(p, mask) for p in pairs]))
    store.write(
        root,
        "conversations",
        store.rows_to_arrow("conversations", [conversation_row(c, mask) for c in conversations]),
    )
    return root


@given(
    groups=st.lists(st.sampled_from([f"chat-{i}" for i in range(12)]), min_size=10, max_size=200),
    folds=st.integers(2, 5),
)
def test_no_chat_is_on_both_sides_of_a_split(groups, folds):
    series = pd.Series(groups)
    folds = min(folds, series.nunique())
    if folds < 2:
        return
    seen_in_test = []
    for train_index, test_index in grouped_folds(series, folds):
        assert not set(series.iloc[train_index]) & set(series.iloc[test_index])
        seen_in_test.extend(test_index)
    assert sorted(seen_in_test) == list(range(len(series)))  # every row is tested exactly once


def test_dropoff_baseline_beats_the_dummy_and_knows_its_data(dataset_root):
    result = train_from_store("dropoff", root=dataset_root, folds=4)
    model, dummy = result.metrics.loc["logistic_regression"], result.metrics.loc["dummy_prior"]
    assert model.roc_auc_mean > dummy.roc_auc_mean + 0.1
    assert model.pr_auc_mean > dummy.pr_auc_mean
    assert result.dataset_version == 0
    assert result.chats == 300
    assert 0 < result.positive_rate < 1
    assert len(result.importances) == 15
    assert result.model.predict_proba(_dropoff_rows(dataset_root)).shape == (5, 2)


def _dropoff_rows(root: str) -> pd.DataFrame:
    from features.training import dropoff_frame

    x, _, _ = dropoff_frame(store.load("turn_pairs", root=root))
    return x.head(5)


def test_escalation_uses_only_turns_before_an_agent(dataset_root):
    result = train_from_store("escalation", root=dataset_root, folds=3, first_turns=2)
    assert result.metrics.loc["dummy_prior"].roc_auc_mean == 0.5
    assert result.extra == {"first_turns": 2}
    from features.training import escalation_frame

    x, _, _ = escalation_frame(store.load("conversations", root=dataset_root), 2)
    assert not x.text_k.str.contains("agent:").any()


def test_saved_model_names_its_dataset_version_and_feature_version(dataset_root, tmp_path):
    result = train_from_store("dropoff", root=dataset_root, folds=3)
    out = save(result, tmp_path / "model")
    metadata = json.loads((out / "metadata.json").read_text())
    assert (metadata["dataset_version"], metadata["feature_version"], metadata["table"]) == (
        0,
        FEATURE_VERSION,
        "turn_pairs",
    )
    assert {m["model"] for m in metadata["metrics"]} == {"logistic_regression", "dummy_prior"}
    assert (out / "model.joblib").stat().st_size > 0


def test_too_little_data_is_a_clear_error(dataset_root):
    pairs = store.load("turn_pairs", root=dataset_root).head(3)
    with pytest.raises(NotEnoughData, match="need 2"):
        train("dropoff", pairs)


def test_train_command_prints_the_metrics_table(dataset_root, tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--task",
                "dropoff",
                "--dataset-uri",
                dataset_root,
                "--folds",
                "3",
                "--out",
                str(tmp_path / "m"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "turn_pairs version 0" in out
    assert "logistic_regression" in out
    assert "dummy_prior" in out
    assert (tmp_path / "m" / "model.joblib").exists()


def test_train_command_on_an_empty_root_is_one_line(tmp_path, capsys):
    assert main(["train", "--task", "escalation", "--dataset-uri", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error:")
    assert err.count("\n") == 1
