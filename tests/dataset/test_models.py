"""Models as skops artefacts: a round trip predicts the same, another FEATURE_VERSION or an
untrusted type is refused, and the card says what the models were trained on (real skops)."""

import dataclasses
import hashlib
import json
import math
import os
import zipfile

import numpy as np
import pytest
import skops.io
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from cli.main import main
from dataset import store
from dataset.models import load_model, save
from dataset.training import train_from_store
from devtools.simulate import SimulationOptions
from features.splits import SplitSpec, splits_of
from features.structs import FEATURE_VERSION
from features.training import dropoff_frame, escalation_frame, train
from messagehooks.errors import ConfigError, ModelMismatch, UntrustedModel
from streams.sessions import SessionSettings
from tests.features.simulated import simulated_messages, stream_cut, write_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> str:
    """Every conversation of 400 simulated chats, closed (all labels final)."""
    messages = simulated_messages(SimulationOptions(chats=400, seed=5))
    path = str(tmp_path_factory.mktemp("dataset"))
    write_dataset(path, *stream_cut(messages, until=math.inf, settings=SessionSettings()))
    return path


@pytest.fixture(scope="module")
def saved(root, tmp_path_factory):
    """Both tasks trained on `root` and saved by `train --out`."""
    out = tmp_path_factory.mktemp("models") / "m"
    assert main(["train", "--dataset-uri", root, "--folds", "3", "--out", str(out)]) == 0
    return out


def test_a_model_round_trips_and_predicts_the_same(root, saved):
    artefact = load_model(saved)
    x_dropoff, _, _ = dropoff_frame(store.load("turn_pairs", root=root))
    x_escalation, _, _ = escalation_frame(store.load("conversations", root=root))
    fresh = {
        "dropoff": train_from_store("dropoff", root=root, folds=3).model,
        "escalation": train_from_store("escalation", root=root, folds=3).model,
    }
    for task, x in (("dropoff", x_dropoff), ("escalation", x_escalation)):
        assert isinstance(artefact.models[task], Pipeline)
        np.testing.assert_array_equal(artefact.models[task].predict_proba(x), fresh[task].predict_proba(x))
    assert artefact.feature_version == FEATURE_VERSION
    assert len(artefact.model_id) == 16


def test_the_files_are_skops_and_the_card_says_what_they_were_trained_on(saved):
    assert sorted(p.name for p in saved.iterdir()) == [
        "README.md",
        "dropoff.skops",
        "escalation.skops",
        "model.json",
    ]
    for task in ("dropoff", "escalation"):
        assert zipfile.is_zipfile(saved / f"{task}.skops")  # skops' zip of JSON, not a pickle
        assert skops.io.get_untrusted_types(file=saved / f"{task}.skops") == []
    card = json.loads((saved / "model.json").read_text())
    assert card["feature_version"] == FEATURE_VERSION
    assert card["split"] == {"seed": SplitSpec().seed, "proportions": list(SplitSpec().proportions)}
    dropoff = card["tasks"]["dropoff"]
    assert (dropoff["table"], dropoff["dataset_version"]) == ("turn_pairs", 0)
    assert sum(dropoff["split_rows"].values()) == dropoff["rows"]
    assert min(dropoff["split_rows"].values()) > 0
    assert "prompt_text" in dropoff["features"]
    assert card["tasks"]["escalation"]["features"][0] == "text_k"
    test = {record["model"]: record for record in dropoff["test_metrics"]}
    assert test["logistic_regression"]["roc_auc"] > test["dummy_prior"]["roc_auc"] == 0.5
    readme = (saved / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: sklearn\n")
    assert f"FEATURE_VERSION {FEATURE_VERSION}" in readme
    assert "## dropoff (`dropoff.skops`)" in readme
    assert "## escalation (`escalation.skops`)" in readme


def _rewrite_card(directory, change) -> None:
    card = json.loads((directory / "model.json").read_text())
    change(card)
    (directory / "model.json").write_text(json.dumps(card))


def _copy(saved, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in saved.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    return copy


def test_another_feature_version_is_refused_naming_both(saved, tmp_path, capsys):
    copy = _copy(saved, tmp_path)
    _rewrite_card(copy, lambda card: card.update(feature_version=FEATURE_VERSION + 1))
    with pytest.raises(ModelMismatch) as refused:
        load_model(copy)
    message = str(refused.value)
    assert f"FEATURE_VERSION {FEATURE_VERSION + 1}" in message
    assert f"FEATURE_VERSION {FEATURE_VERSION}:" in message
    assert "\n" not in message  # the CLI prints it as one line


def test_a_type_outside_the_trusted_list_is_refused(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    evil = skops.io.dumps(Pipeline([("run", FunctionTransformer(os.system))]))
    (copy / "dropoff.skops").write_bytes(evil)
    with pytest.raises(UntrustedModel, match="sha256 differs"):
        load_model(copy)
    # Whoever swapped the file can rewrite the card too: the types are still checked.
    digest = hashlib.sha256(evil).hexdigest()
    _rewrite_card(copy, lambda card: card["tasks"]["dropoff"].update(sha256=digest))
    with pytest.raises(UntrustedModel, match="system"):
        load_model(copy)


def test_saving_a_model_with_an_untrusted_type_is_refused(root, tmp_path):
    result = train_from_store("escalation", root=root, folds=2)
    evil = dataclasses.replace(result, model=Pipeline([("run", FunctionTransformer(os.system))]))
    with pytest.raises(UntrustedModel, match="system"):
        save([evil], tmp_path / "m")
    assert not (tmp_path / "m" / "escalation.skops").exists()


def test_a_directory_without_a_card_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"model\.json is missing"):
        load_model(tmp_path)


def test_training_fits_on_the_train_split_and_scores_the_test_split(root):
    pairs = store.load("turn_pairs", root=root)
    spec = SplitSpec(seed="another", proportions=(0.6, 0.2, 0.2))
    result = train("dropoff", pairs, folds=3, split=spec)
    _, y, groups = dropoff_frame(pairs)
    expected = {name: splits_of(groups, spec).count(name) for name in ("train", "validation", "test")}
    assert result.split_rows == expected
    assert result.split == spec
    assert list(result.test_metrics.index) == ["logistic_regression", "dummy_prior"]
    assert result.test_metrics.loc["dummy_prior", "roc_auc"] == 0.5
    # Without a test split the model still trains; its test scores are undefined, not invented.
    everything = train("dropoff", pairs, folds=3, split=SplitSpec(proportions=(1.0, 0.0, 0.0)))
    assert everything.split_rows["train"] == len(y)
    assert everything.test_metrics.isna().all().all()
