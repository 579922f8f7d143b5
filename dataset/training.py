"""Training on the store: the final rows of a pinned version in, a model and its metadata out.

The models, features and metrics are pure (`features.training`); this is their input: the rows
come from `dataset.store.load_final` (the root always passed in). `dataset.models.save` writes the
models. `messagehooks train` and notebooks/02-train-baselines.ipynb call `train_from_store`.
"""

import math
from typing import Any

from dataset import store
from features.splits import SplitSpec
from features.training import DEFAULT_SPLIT, TASK_TABLE, TASKS, NotEnoughData, Task, TrainResult, train


def train_from_store(
    task: Task,
    *,
    root: str,
    version: int | None = None,
    include_open: bool = False,
    split: SplitSpec = DEFAULT_SPLIT,
    **kwargs: Any,
) -> TrainResult:
    """`train` on the final rows of the task's table at `version` (latest when None) under `root`.

    Fitted on the train split of `split`, scored on its test split (`features.training.train`).

    The result records the versions read and what was left out (`TrainResult.labels`);
    `include_open` trains on every row instead (their labels may still change: biased).

    Raises:
        NotEnoughData: too few rows; the message says how many were left out, and why.
        TableMissing: the task's table has not been written yet.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    selection = store.load_final(TASK_TABLE[task], version, root=root, include_open=include_open)
    try:
        result = train(
            task, selection.rows, dataset_version=selection.versions[TASK_TABLE[task]], split=split, **kwargs
        )
    except NotEnoughData as exc:
        if selection.left_out == 0:
            raise
        raise NotEnoughData(f"{exc} ({selection.summary()})") from exc
    result.labels = {
        "versions": selection.versions,
        "left_out": selection.left_out,
        "not_final": selection.not_final,
        "after_horizon": selection.after_horizon,
        "horizon": None if math.isinf(selection.horizon) else selection.horizon,
        "include_open": selection.include_open,
        "summary": selection.summary(),
    }
    return result
