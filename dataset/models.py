"""Trained models as artefacts: one skops file per task, a model card, and a loader that checks them.

A model directory holds ``{task}.skops`` (skops, never pickle: loading a pickle runs whatever code
it names), ``model.json`` (what the models were trained on, their scores and the sha256 of each
file) and ``README.md`` (the same, for people: the model card). `load_model` refuses a directory
made for other features (`FEATURE_VERSION`): its inputs would be computed by code that means
something else by them. `messagehooks train --out DIR` writes it (docs/models.md).
"""

import hashlib
import json
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sklearn
import skops
import skops.io
from sklearn.pipeline import Pipeline

from features.structs import FEATURE_VERSION
from features.training import TASKS, Task, TrainResult
from messagehooks.errors import ConfigError, ModelMismatch, UntrustedModel

ARTEFACT_FORMAT = "messagehooks-model/1"
CARD = "model.json"
README = "README.md"

TRUSTED_TYPES: tuple[str, ...] = ()
"""Types a model file may hold beyond skops' defaults (scikit-learn estimators, numpy, scipy).

Our pipelines need none: TF-IDF, one-hot, scaling and a logistic regression are all in skops'
defaults. `save` refuses a model holding anything else, and `load_model` a file that does.
"""


@dataclass(frozen=True)
class ModelArtefact:
    """The fitted models of a directory and its card (`model.json`)."""

    directory: Path
    card: dict[str, Any]
    models: dict[Task, Pipeline]

    @property
    def model_id(self) -> str:
        """A digest of the model files: two directories with the same id hold the same models."""
        return str(self.card["model_id"])

    @property
    def feature_version(self) -> int:
        """The FEATURE_VERSION the models were trained on (the running code's, once loaded)."""
        return int(self.card["feature_version"])


def save(results: Sequence[TrainResult], out: Path) -> Path:
    """Write `results` (at most one per task) to `out` as skops files, model.json and README.md.

    A directory that already holds a model is replaced (its skops files, card and README);
    other files in it are left alone.

    Raises:
        UntrustedModel: a model holds a type outside skops' defaults and `TRUSTED_TYPES`.
        ValueError: no result, or two of one task, or results of different splits.
    """
    tasks = [result.task for result in results]
    if not results or len(set(tasks)) != len(tasks):
        raise ValueError(f"need one result per task, got {tasks}")
    if len({result.split for result in results}) != 1:
        raise ValueError("the results were trained on different splits")
    files = {result.task: _dumped(result) for result in results}
    out.mkdir(parents=True, exist_ok=True)
    for stale in (*(out / f"{task}.skops" for task in TASKS), out / CARD, out / README):
        stale.unlink(missing_ok=True)
    for task, data in files.items():
        (out / f"{task}.skops").write_bytes(data)
    card = model_card(results, {task: hashlib.sha256(data).hexdigest() for task, data in files.items()})
    (out / README).write_text(render_card(card), encoding="utf-8")
    (out / CARD).write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    return out


def _dumped(result: TrainResult) -> bytes:
    data: bytes = skops.io.dumps(result.model)
    untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModel(f"the {result.task} model holds types outside the trusted list: {untrusted}")
    return data


def model_card(results: Sequence[TrainResult], digests: dict[Task, str]) -> dict[str, Any]:
    """What model.json holds: the versions, the split, and per task its data, features and scores."""
    split = results[0].split
    return {
        "format": ARTEFACT_FORMAT,
        "model_id": hashlib.sha256("".join(digests[t] for t in sorted(digests)).encode()).hexdigest()[:16],
        "feature_version": FEATURE_VERSION,
        "split": {"seed": split.seed, "proportions": list(split.proportions)},
        "created_at": datetime.now(tz=UTC).isoformat(),
        "versions": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "skops": skops.__version__,
        },
        "tasks": {
            result.task: {
                **result.metadata(),
                "file": f"{result.task}.skops",
                "sha256": digests[result.task],
            }
            for result in results
        },
    }


def load_model(directory: Path) -> ModelArtefact:
    """The models of `directory`, after checking its card, each file's digest and its types.

    Raises:
        ConfigError: no model.json there, or a file it names is missing.
        ModelMismatch: another FEATURE_VERSION or artefact format than this code's.
        UntrustedModel: a file differs from its digest, or holds a type outside the trusted list.
    """
    path = Path(directory) / CARD
    try:
        card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no model at {directory}: {CARD} is missing (write one with `train --out`)"
        ) from None
    if card.get("format") != ARTEFACT_FORMAT:
        raise ModelMismatch(
            f"the model at {directory} has artefact format {card.get('format')!r}; "
            f"this code reads {ARTEFACT_FORMAT!r}"
        )
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelMismatch(
            f"the model at {directory} was trained on FEATURE_VERSION {card.get('feature_version')}, "
            f"this code computes FEATURE_VERSION {FEATURE_VERSION}: retrain it (`messagehooks train --out`)"
        )
    models: dict[Task, Pipeline] = {}
    for task, entry in card["tasks"].items():
        models[task] = _loaded(Path(directory) / entry["file"], entry["sha256"])
    return ModelArtefact(directory=Path(directory), card=card, models=models)


def _loaded(path: Path, sha256: str) -> Pipeline:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path} is missing: {CARD} names it") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise UntrustedModel(f"{path} is not the file {CARD} was written with (its sha256 differs)")
    untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise UntrustedModel(f"{path} holds types outside the trusted list, refused: {untrusted}")
    model: Pipeline = skops.io.loads(data, trusted=list(TRUSTED_TYPES))
    return model


def render_card(card: dict[str, Any]) -> str:
    """The model card (README.md): the same facts as model.json, for people."""
    split = card["split"]
    lines = [
        "---",
        "library_name: sklearn",
        "tags: [skops, tabular-classification, messagehooks]",
        "---",
        "",
        f"# messagehooks baselines `{card['model_id']}`",
        "",
        f"Logistic regressions on Landbot conversations (scikit-learn {card['versions']['sklearn']}, saved "
        f"with skops {card['versions']['skops']}). FEATURE_VERSION {card['feature_version']}; split seed "
        f"`{split['seed']}`, proportions train/validation/test {split['proportions']} (by chat).",
        "",
        "Load with `dataset.models.load_model(DIR)`: it refuses another FEATURE_VERSION.",
    ]
    for task, entry in card["tasks"].items():
        rows = entry["split_rows"]
        lines += [
            "",
            f"## {task} (`{entry['file']}`)",
            "",
            f"- table `{entry['table']}` version {entry['dataset_version']}; "
            f"{entry['labels'].get('summary', 'rows as given')}",
            f"- rows: {entry['rows']} from {entry['chats']} chats; train {rows['train']}, validation "
            f"{rows['validation']} (unused), test {rows['test']}; positive rate {entry['positive_rate']:.3f}",
            f"- features: {', '.join(f'`{name}`' for name in entry['features'])}",
            "",
            "| model | test ROC-AUC | test PR-AUC | test Brier | CV ROC-AUC | CV PR-AUC | CV Brier |",
            "|---|---|---|---|---|---|---|",
        ]
        cv = {record["model"]: record for record in entry["metrics"]}
        for record in entry["test_metrics"]:
            mean = cv[record["model"]]
            cells = [record[m] for m in ("roc_auc", "pr_auc", "brier")]
            cells += [mean[f"{m}_mean"] for m in ("roc_auc", "pr_auc", "brier")]
            lines.append(f"| {record['model']} | " + " | ".join(_number(v) for v in cells) + " |")
        lines.append(
            f"\nCV: {entry['folds']} folds grouped by chat inside the train split; calibration error "
            f"(out of fold) {entry['calibration_error']:.4f}."
        )
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"
