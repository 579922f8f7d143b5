"""Baseline training: grouped folds never leak a chat, models beat the dummy, the CLI reports."""

import json
import math

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cli.main import main
from dataset import store
from dataset.models import save
from dataset.training import train_from_store
from devtools.simulate import SimulationOptions
from features.batch import build_dataset, pairs_frame
from features.labels import conversation_starts
from features.structs import FEATURE_VERSION
from features.training import NotEnoughData, dropoff_frame, grouped_folds, train
from messagehooks.schema import Message
from messagehooks.settings import Hook
from messagehooks.validation import normalize
from streams.sessions import SessionSettings
from tests.features.simulated import START, simulated_messages, stream_cut, write_dataset
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
    root = str(tmp_path_factory.mktemp("dataset"))
    write_dataset(root, *build_dataset(messages))
    return root


@pytest.fixture(scope="module")
def simulated_cut(tmp_path_factory) -> tuple[str, list[Message]]:
    """A version taken 15 minutes into `messagehooks simulate`'s traffic (600 chats at 5 messages/s,
    a 2-minute conversation gap), while conversations are still open; and all the messages."""
    messages = simulated_messages(SimulationOptions(chats=600, seed=11, rate=5.0))
    pairs, conversations = stream_cut(
        messages, until=START + 900, settings=SessionSettings(conversation_gap=GAP)
    )
    root = str(tmp_path_factory.mktemp("cut"))
    write_dataset(root, pairs, conversations)
    return root, messages


GAP = 120.0


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
    out = save([result], tmp_path / "model")
    metadata = json.loads((out / "model.json").read_text())["tasks"]["dropoff"]
    assert (metadata["dataset_version"], metadata["feature_version"], metadata["table"]) == (
        0,
        FEATURE_VERSION,
        "turn_pairs",
    )
    assert {m["model"] for m in metadata["metrics"]} == {"logistic_regression", "dummy_prior"}
    assert (out / "dropoff.skops").stat().st_size > 0


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
    assert "read turn_pairs version 0, conversations version 0" in out
    assert "every turn_pairs row read has a final label" in out
    assert "calibration error (out of fold): 0.0" in out
    assert "logistic_regression" in out
    assert "dummy_prior" in out
    assert "split 'messagehooks-splits-1' by chat: train " in out
    assert "\ntest split:\n" in out
    assert (tmp_path / "m" / "dropoff.skops").exists()
    assert not (tmp_path / "m" / "escalation.skops").exists()  # --task: that one only


def test_train_command_on_an_empty_root_is_one_line(tmp_path, capsys):
    assert main(["train", "--task", "escalation", "--dataset-uri", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error:")
    assert err.count("\n") == 1


def test_dropoff_on_final_labels_is_calibrated_and_beats_the_dummy(simulated_cut):
    root, _ = simulated_cut
    result = train_from_store("dropoff", root=root)
    model, dummy = result.metrics.loc["logistic_regression"], result.metrics.loc["dummy_prior"]
    assert model.roc_auc_mean > dummy.roc_auc_mean + 0.2
    assert model.pr_auc_mean > dummy.pr_auc_mean + 0.2
    assert model.brier_mean < dummy.brier_mean - 0.02
    # Out of fold, each tenth of the predictions is within 5 points of what happened, on average.
    assert result.calibration_error < 0.05
    assert result.labels["not_final"] > 0
    assert result.labels["after_horizon"] > 0
    assert result.labels["versions"] == {"turn_pairs": 0, "conversations": 0}


def test_final_labels_are_the_batch_oracles_and_every_row_would_be_biased(simulated_cut):
    root, messages = simulated_cut
    final = train_from_store("dropoff", root=root, folds=2)
    everything = train_from_store("dropoff", root=root, folds=2, include_open=True)

    oracle = pairs_frame(build_dataset(messages, conversation_gap=GAP)[0])
    before = oracle[conversation_starts(oracle["conversation_id"]) < final.labels["horizon"]]
    _, dropped_off, _ = dropoff_frame(before)
    assert (final.rows, final.positive_rate) == (len(dropped_off), dropped_off.mean())
    # Open conversations' answered pairs are there, their unanswered ones are not yet.
    assert everything.rows > final.rows
    assert everything.positive_rate < final.positive_rate - 0.01
    assert everything.labels["left_out"] == 0


def test_escalation_on_final_labels_beats_the_dummy(simulated_cut):
    root, _ = simulated_cut
    result = train_from_store("escalation", root=root, folds=3)
    model, dummy = result.metrics.loc["logistic_regression"], result.metrics.loc["dummy_prior"]
    assert model.roc_auc_mean > dummy.roc_auc_mean + 0.2
    assert model.pr_auc_mean > dummy.pr_auc_mean + 0.2
    assert model.brier_mean < dummy.brier_mean
    assert result.labels["after_horizon"] > 0


def test_one_class_is_a_one_line_cli_error(tmp_path, capsys):
    messages = simulated_messages(SimulationOptions(chats=60, seed=2, escalation=0.0))
    write_dataset(str(tmp_path), *stream_cut(messages, until=math.inf, settings=SessionSettings()))
    argv = ["train", "--task", "escalation", "--folds", "2", "--out", str(tmp_path / "m")]
    assert main([*argv, "--dataset-uri", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error: not enough data to train: escalation: ")
    assert "0 positive" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_too_few_final_rows_is_a_one_line_cli_error_that_says_why(tmp_path, capsys):
    # Five minutes in, with the default 30-minute gap: no conversation has closed.
    messages = simulated_messages(SimulationOptions(chats=100, seed=2))
    write_dataset(str(tmp_path), *stream_cut(messages, until=START + 300, settings=SessionSettings()))
    assert main(["train", "--task", "dropoff", "--dataset-uri", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error: not enough data to train: dropoff: 0 rows")
    assert "whose conversation is still open (label not final)" in err
    assert err.count("\n") == 1


def test_a_class_in_one_chat_is_not_enough_for_two_folds(dataset_root):
    pairs = store.load("turn_pairs", root=dataset_root)
    one_chat = pairs["chat_id"] == pairs["chat_id"].iloc[0]
    pairs["answered"] = ~one_chat  # only one chat ever drops off, at each of its prompts
    assert (one_chat & pairs["prompt_role"].ne("customer")).sum() >= 2  # enough positives for 2 folds
    with pytest.raises(NotEnoughData, match="a fold's training part lacks it"):
        train("dropoff", pairs, folds=2)


@pytest.mark.parametrize("flags", [["--folds", "1"], ["--first-turns", "0"]])
def test_folds_and_first_turns_out_of_range_are_one_line(dataset_root, capsys, flags):
    assert main(["train", "--task", "escalation", "--dataset-uri", dataset_root, *flags]) == 2
    assert capsys.readouterr().err.startswith("messagehooks: error: need --folds 2 or more")
