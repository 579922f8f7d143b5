"""Baseline models on a pinned dataset version: drop-off and escalation (scikit-learn).

Two tasks, both binary. Rows go to the train, validation or test split of their chat
(`features.splits`: the same chat in every table, version and export). The model is fitted on the
train split and scored on the test split; inside the train split it is also evaluated with folds
grouped by chat (no chat in the train and the test part of a fold, so a model cannot learn a
chat's wording and "predict" its other turns). Both against a `DummyClassifier` on the same rows.
The validation split is left unseen, for whoever tunes a model on top:

- dropoff: will the customer answer this bot/agent prompt? One row per `turn_pairs` row whose
  prompt is a bot or agent turn; label = not answered. Only what is known when the prompt ends
  is used (prompt text and features, position, time, country, channel, agent assigned).
- escalation: will this conversation reach a human agent, seen from its first `k` turns? One
  row per conversation that has `k` turns before any agent turn and before its assignment;
  label = escalated. Features: the first k turns' text and simple counts.

Both learn only from rows whose label is final and unbiased by time (`features.labels`):
`dataset.training.train_from_store` reads them with `dataset.store.load_final` and says how
many it left out. The model is an unweighted logistic regression, so its probabilities are calibrated (class
weights would move every probability towards the rare class: a Brier score worse than the
dummy's, docs/dataset.md "Final labels").

This module reads and writes nothing: `dataset.training` reads the store, `dataset.models` saves and
loads the models (skops); `messagehooks train` and notebooks/02-train-baselines.ipynb call them.
"""

import math
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import clone
from sklearn.calibration import calibration_curve
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from features.labels import LabelledTable
from features.splits import SPLITS, Split, SplitSpec, splits_of
from features.structs import FEATURE_VERSION
from messagehooks.errors import MessageHooksError

Task = Literal["dropoff", "escalation"]
TASKS: tuple[Task, ...] = ("dropoff", "escalation")
TASK_TABLE: dict[Task, LabelledTable] = {"dropoff": "turn_pairs", "escalation": "conversations"}
DEFAULT_FIRST_TURNS = 2
"""The greeting and the customer's first answer: the earliest point a model can help route."""
DEFAULT_SPLIT = SplitSpec()

DROPOFF_NUMERIC = [
    "prompt_chars",
    "prompt_words",
    "prompt_option_count",
    "pair_index",
    "prompt_turn_index",
    "hour_of_day",
    "weekday",
]
DROPOFF_FLAGS = [
    "prompt_is_button",
    "prompt_has_question",
    "prompt_has_digits",
    "prompt_has_email",
    "prompt_has_url",
    "agent_assigned",
]
DROPOFF_CATEGORIES = ["prompt_role", "prompt_kind", "country", "channel_id"]
ESCALATION_NUMERIC = ["customer_turns_k", "bot_turns_k", "customer_chars_k", "seconds_k", "hour_of_day"]
ESCALATION_CATEGORIES = ["country", "channel_id"]


class NotEnoughData(MessageHooksError, ValueError):
    """Too few rows, chats or examples of a class to evaluate a model honestly."""


@dataclass
class TrainResult:
    """A fitted model, how it scored against the baseline, and what it was trained on."""

    task: Task
    model: Pipeline
    metrics: pd.DataFrame
    importances: pd.DataFrame
    calibration: pd.DataFrame
    rows: int
    chats: int
    positive_rate: float
    dataset_version: int | None
    folds: int
    split: SplitSpec = field(default_factory=SplitSpec)
    split_rows: dict[Split, int] = field(default_factory=dict)
    split_chats: dict[Split, int] = field(default_factory=dict)
    test_metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    """ROC-AUC, PR-AUC and Brier on the test split (NaN where it lacks a class or rows)."""
    features: list[str] = field(default_factory=list)
    """The input columns the model reads, in order."""
    extra: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    """What `load_final` read and left out (empty when `train` was given a frame)."""

    @property
    def calibration_error(self) -> float:
        """Mean |observed - predicted| over the calibration bins (equal-count bins: the ECE)."""
        return float((self.calibration["observed"] - self.calibration["predicted"]).abs().mean())

    def metadata(self) -> dict[str, Any]:
        """What a saved model carries: its data, its features and its scores."""
        return {
            "task": self.task,
            "table": TASK_TABLE[self.task],
            "dataset_version": self.dataset_version,
            "feature_version": FEATURE_VERSION,
            "rows": self.rows,
            "chats": self.chats,
            "positive_rate": self.positive_rate,
            "folds": self.folds,
            "split": {"seed": self.split.seed, "proportions": list(self.split.proportions)},
            "split_rows": self.split_rows,
            "split_chats": self.split_chats,
            "features": self.features,
            "metrics": self.metrics.reset_index().to_dict(orient="records"),
            "test_metrics": _records(self.test_metrics),
            "calibration_error": self.calibration_error,
            "labels": self.labels,
            "trained_at": datetime.now(tz=UTC).isoformat(),
            "sklearn": sklearn.__version__,
            "python": platform.python_version(),
            **self.extra,
        }


def dropoff_frame(pairs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(features, label "dropped off", chat groups) from a `turn_pairs` table."""
    prompts = pairs[pairs["prompt_role"].isin(["bot", "agent"])].reset_index(drop=True)
    x = prompts[["prompt_text", *DROPOFF_NUMERIC, *DROPOFF_FLAGS]].copy()
    x["prompt_text"] = x["prompt_text"].fillna("")
    x["prompt_role"] = prompts["prompt_role"]
    x["prompt_kind"] = prompts["prompt_types"].map(_last_type)
    x["country"] = prompts["country"].fillna("unknown")
    x["channel_id"] = prompts["channel_id"].fillna("unknown").astype(str)
    x[DROPOFF_FLAGS] = x[DROPOFF_FLAGS].fillna(False).astype(int)
    y = (~prompts["answered"].astype(bool)).astype(int).rename("dropped_off")
    return x, y, prompts["chat_id"].astype(str)


def escalation_frame(
    conversations: pd.DataFrame, first_turns: int = DEFAULT_FIRST_TURNS
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """(features of the first `first_turns` turns, label "escalated", chat groups).

    Conversations already with an agent (an agent turn, or the assignment) within those turns
    are left out: their outcome is known by then.
    """
    rows = []
    records = cast(
        list[dict[str, Any]], conversations.to_dict(orient="records")
    )  # pandas types keys as Hashable
    for conversation in records:
        turns: list[dict[str, Any]] = list(
            conversation["transcript"] if conversation["transcript"] is not None else []
        )
        if len(turns) < first_turns:
            continue
        head = turns[:first_turns]
        start: float = conversation["start_ts"]
        to_assignment = conversation["time_to_assignment_s"]
        assigned_at = None if to_assignment is None or pd.isna(to_assignment) else start + to_assignment
        if any(t["role"] == "agent" for t in head) or (
            assigned_at is not None and head[-1]["ts"] >= assigned_at
        ):
            continue
        customer = [t for t in head if t["role"] == "customer"]
        rows.append(
            {
                "text_k": "\n".join(f"{t['role']}: {t['text']}" for t in head),
                "customer_turns_k": len(customer),
                "bot_turns_k": sum(1 for t in head if t["role"] == "bot"),
                "customer_chars_k": sum(len(t["text"] or "") for t in customer),
                "seconds_k": head[-1]["ts"] - head[0]["ts"],
                "hour_of_day": datetime.fromtimestamp(start, tz=UTC).hour,
                "country": conversation["country"] or "unknown",
                "channel_id": str(conversation["channel_id"] or "unknown"),
                "escalated": int(bool(conversation["escalated"])),
                "chat_id": str(conversation["chat_id"]),
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise NotEnoughData(f"no conversation has {first_turns} turns before an agent joins")
    return frame.drop(columns=["escalated", "chat_id"]), frame["escalated"], frame["chat_id"]


def make_pipeline(task: Task, seed: int = 0) -> Pipeline:
    """TF-IDF on the text, one-hot on categories, scaled numbers -> logistic regression."""
    if task == "dropoff":
        text, numeric, categories = "prompt_text", DROPOFF_NUMERIC + DROPOFF_FLAGS, DROPOFF_CATEGORIES
    else:
        text, numeric, categories = "text_k", ESCALATION_NUMERIC, ESCALATION_CATEGORIES
    columns = ColumnTransformer(
        [
            (
                "text",
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20_000, sublinear_tf=True),
                text,
            ),
            ("category", OneHotEncoder(handle_unknown="ignore", min_frequency=5), categories),
            ("number", StandardScaler(), numeric),
        ]
    )
    # No class weights: they shift the intercept and the probabilities stop meaning frequencies.
    model = LogisticRegression(max_iter=2000, random_state=seed)
    return Pipeline([("features", columns), ("model", model)])


def grouped_folds(groups: pd.Series, folds: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Train/test indices where no group (chat) is on both sides."""
    yield from GroupKFold(n_splits=folds).split(np.zeros(len(groups)), groups=groups)


Fold = tuple[np.ndarray, np.ndarray]


def evaluate(
    make_model: Callable[[], Any], x: pd.DataFrame, y: pd.Series, splits: list[Fold]
) -> tuple[dict[str, list[float]], np.ndarray]:
    """Scores per fold and the out-of-fold probabilities of `make_model()`."""
    scores: dict[str, list[float]] = {"roc_auc": [], "pr_auc": [], "brier": []}
    out_of_fold = np.zeros(len(y))
    for train_index, test_index in splits:
        model = make_model().fit(x.iloc[train_index], y.iloc[train_index])
        probability = model.predict_proba(x.iloc[test_index])[:, 1]
        out_of_fold[test_index] = probability
        truth = y.iloc[test_index]
        if truth.nunique() < 2:
            continue  # a fold with one class has no ROC-AUC
        scores["roc_auc"].append(float(roc_auc_score(truth, probability)))
        scores["pr_auc"].append(float(average_precision_score(truth, probability)))
        scores["brier"].append(float(brier_score_loss(truth, probability)))
    return scores, out_of_fold


def train(
    task: Task,
    table: pd.DataFrame,
    *,
    dataset_version: int | None = None,
    folds: int = 5,
    first_turns: int = DEFAULT_FIRST_TURNS,
    seed: int = 0,
    split: SplitSpec = DEFAULT_SPLIT,
) -> TrainResult:
    """Fit the baseline and the dummy on the train split of `split`, score them on its test split.

    The grouped folds (cross-validation and the calibration curve, out of fold) run inside the
    train split. `table` is used as given: `dataset.training.train_from_store` selects the final rows.

    Raises:
        NotEnoughData: too few rows, chats or examples of a class for `folds` honest folds.
        ValueError: an unknown task, fewer than 2 folds or fewer than 1 first turn.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    if folds < 2 or first_turns < 1:
        raise ValueError(f"need folds >= 2 and first_turns >= 1, got {folds} and {first_turns}")
    x_all, y_all, groups_all = (
        dropoff_frame(table) if task == "dropoff" else escalation_frame(table, first_turns)
    )
    row_split = pd.Series(splits_of(groups_all, split), index=groups_all.index)
    part = row_split.eq("train")
    x, y, groups = x_all[part].reset_index(drop=True), y_all[part].reset_index(drop=True), groups_all[part]
    folds = min(folds, int(groups.nunique()))
    splits = _checked_splits(task, y, groups.reset_index(drop=True), folds)
    pipeline = make_pipeline(task, seed)
    model_scores, out_of_fold = evaluate(lambda: clone(pipeline), x, y, splits)
    dummy_scores, _ = evaluate(lambda: DummyClassifier(strategy="prior"), x, y, splits)
    metrics = pd.DataFrame(
        {
            f"{name}_{stat}": [getattr(np, stat)(scores[name]) for scores in (model_scores, dummy_scores)]
            for name in ("roc_auc", "pr_auc", "brier")
            for stat in ("mean", "std")
        },
        index=pd.Index(["logistic_regression", "dummy_prior"], name="model"),
    )
    model = clone(pipeline).fit(x, y)
    test = row_split.eq("test")
    test_metrics = holdout_scores(
        {"logistic_regression": model, "dummy_prior": DummyClassifier(strategy="prior").fit(x, y)},
        x_all[test],
        y_all[test],
    )
    prob_true, prob_pred = calibration_curve(y, out_of_fold, n_bins=10, strategy="quantile")
    return TrainResult(
        task=task,
        model=model,
        metrics=metrics,
        importances=importances(model),
        calibration=pd.DataFrame({"predicted": prob_pred, "observed": prob_true}),
        rows=len(y_all),
        chats=int(groups_all.nunique()),
        positive_rate=float(y_all.mean()),
        dataset_version=dataset_version,
        folds=folds,
        split=split,
        split_rows={name: int(row_split.eq(name).sum()) for name in SPLITS},
        split_chats={name: int(groups_all[row_split.eq(name)].nunique()) for name in SPLITS},
        test_metrics=test_metrics,
        features=[str(column) for column in x.columns],
        extra={"first_turns": first_turns} if task == "escalation" else {},
    )


def holdout_scores(models: dict[str, Any], x: pd.DataFrame, y: pd.Series) -> pd.DataFrame:
    """ROC-AUC, PR-AUC and Brier of each fitted model on held-out rows (NaN where undefined)."""
    scores: dict[str, list[float]] = {"roc_auc": [], "pr_auc": [], "brier": []}
    for model in models.values():
        probability = model.predict_proba(x)[:, 1] if len(y) else np.zeros(0)
        both = y.nunique() == 2
        scores["roc_auc"].append(float(roc_auc_score(y, probability)) if both else math.nan)
        scores["pr_auc"].append(float(average_precision_score(y, probability)) if both else math.nan)
        scores["brier"].append(float(brier_score_loss(y, probability)) if len(y) else math.nan)
    return pd.DataFrame(scores, index=pd.Index(list(models), name="model"))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A metrics frame as JSON records, NaN as None (JSON has no NaN)."""
    records = cast(list[dict[str, Any]], frame.reset_index().to_dict(orient="records"))
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in records]


def _checked_splits(task: Task, y: pd.Series, groups: pd.Series, folds: int) -> list[Fold]:
    """The grouped folds, if every training part holds both classes and a test part can be scored."""
    positives = int(y.sum())
    what = (
        f"{task}: {len(y)} rows from {int(groups.nunique())} chats in the train split, {positives} "
        f"positive and {len(y) - positives} negative"
    )
    if folds < 2 or min(positives, len(y) - positives) < folds:
        raise NotEnoughData(f"{what}: need 2+ chats and at least {max(folds, 2)} rows of each class")
    splits = list(grouped_folds(groups, folds))
    if any(y.iloc[train_index].nunique() < 2 for train_index, _ in splits):
        raise NotEnoughData(
            f"{what}: one class is in so few chats that a fold's training part lacks it; "
            "use fewer folds or wait for more data"
        )
    if not any(y.iloc[test_index].nunique() == 2 for _, test_index in splits):
        raise NotEnoughData(f"{what}: no fold's test part holds both classes, so none can be scored")
    return splits


def importances(model: Pipeline, top: int = 15) -> pd.DataFrame:
    """The largest coefficients (by magnitude) with their feature names."""
    names = model.named_steps["features"].get_feature_names_out()
    coefficients = model.named_steps["model"].coef_[0]
    order = np.argsort(-np.abs(coefficients))[:top]
    return pd.DataFrame({"feature": names[order], "coefficient": coefficients[order]})


def _last_type(types: Any) -> str:
    if types is None or len(types) == 0:
        return "none"
    return str(types[-1])
