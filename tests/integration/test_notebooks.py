"""The notebooks run end to end on a dataset built by the real pipeline, and the models learn.

Simulated Landbot traffic -> ingest -> broker -> worker -> sink -> Delta; then both notebooks
execute with nbclient (any error fails the test), and the saved baselines beat the dummy.

They run as README says (`jupyter lab notebooks/`): the kernel starts in notebooks/ and no
variable says where the dataset is. The project root is found from the package's location
(messagehooks/paths.py), so the test runs a copy of the checkout, imported from its own
directory as `make venv`'s editable install would be: the dataset goes to the copy's data/, and
a developer's own data/ is neither read nor written.
"""

import asyncio
import io
import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from dataset import store
from devtools.simulate import SimulationOptions, simulate
from features.structs import FEATURE_VERSION
from tests.conftest import broker_env
from tests.integration.checkout import CHECKOUT, copy_of_the_checkout, imported_from
from tests.integration.engines import ENGINES
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess

pytestmark = pytest.mark.integration

NOTEBOOKS = CHECKOUT / "notebooks"
FIGURES = ("traffic", "types-and-roles", "dropoff-per-prompt", "latency", "time-to-assignment")
GAP = 10.0
CHATS = 300
RATE = 120
"""Messages/s the simulation aims at. Behind schedule, it stretches every pause of a chat by
target / achieved rate; a pause stretched past GAP splits a conversation (at 300/s on a loaded
machine the pipeline took 35/s: 336 conversations, not 332). The longest pause is 1.2 s here, so
only a pipeline slower than 14 messages/s splits one."""
SEND_LIMIT = 300.0
"""Seconds the simulation may take to start every chat (about 25 s; it stops at the limit, and a
chat it had no time to start fails the test)."""


@pytest.fixture(scope="module", params=ENGINES)
def checkout_with_dataset(request, tmp_path_factory) -> Path:
    """A checkout whose default dataset (its data/datasets) the pipeline builds on the session
    broker of each engine in turn (a module fixture cannot ask for conftest's per-test `broker`;
    it asks for `tansu` or `kafka`)."""
    broker = request.getfixturevalue(request.param)
    tmp = tmp_path_factory.mktemp("notebooks")
    checkout = copy_of_the_checkout(tmp / "checkout")
    unique = os.urandom(4).hex()
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"nb{unique}.",
        "MESSAGEHOOKS_DATA_DIR": str(checkout / "data"),  # where the copy's default points
        "MESSAGEHOOKS_WORKER_ID": f"nbw{unique}",
        "MESSAGEHOOKS_SINK_GROUP": f"nbs{unique}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(GAP),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "1",
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
    }
    ingest = IngestProcess(env, tmp / "ingest.log").start()
    processes = [
        ingest,
        WorkerProcess(env, tmp / "worker.log").start(),
        SinkProcess(env, tmp / "sink.log").start(),
    ]
    try:
        ingest.wait_ready()
        # Think times 100x faster, and Landbot's retry gaps too; a returning customer's next visit
        # 15 s later (> the gap). The gap exceeds any retry, so wall-clock closing never splits.
        options = SimulationOptions(
            chats=CHATS, rate=RATE, duration=SEND_LIMIT, seed=5, time_scale=0.01, returning_after=1500,
            escalation=0.25, retry_scale=0.05,
        )  # fmt: skip
        summary = asyncio.run(simulate(options, f"{ingest.url}/hooks/default", out=io.StringIO()))
        assert summary.failed == 0, summary.line()
        assert summary.chats == CHATS
        conversations = CHATS + summary.returning
        root = str(checkout / "data" / "datasets")
        deadline = time.monotonic() + 180  # the last conversations close GAP after their end
        while time.monotonic() < deadline:
            if (
                store.exists(root, "conversations")
                and len(store.load("conversations", root=root)) >= conversations
            ):
                break
            time.sleep(0.5)
        assert len(store.load("conversations", root=root)) == conversations
        yield checkout
    finally:
        for process in processes:
            process.stop()


WHERE = """from messagehooks.settings import load_settings

print(load_settings().dataset_root)"""
"""A last cell the test adds: the dataset root the kernel resolved (the notebook read it)."""


@pytest.mark.parametrize("name", ["01-explore-dataset.ipynb", "02-train-baselines.ipynb"])
def test_notebook_runs_end_to_end(name, checkout_with_dataset, tmp_path, monkeypatch):
    checkout = checkout_with_dataset
    for variable in ("MESSAGEHOOKS_DATA_DIR", "MESSAGEHOOKS_DATASET_URI"):
        monkeypatch.delenv(variable, raising=False)  # no override: the default resolves
    monkeypatch.setenv("NOTEBOOK_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("NOTEBOOK_FIGURES", str(tmp_path / "figures"))
    # The editable install of the copy: its directory on the path, before the venv's own.
    for variable, value in imported_from(checkout).items():
        monkeypatch.setenv(variable, value)
    notebook = nbformat.read(checkout / "notebooks" / name, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(WHERE))
    NotebookClient(
        notebook,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(checkout / "notebooks")}},
    ).execute()
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    root = checkout / "data" / "datasets"
    assert printed(notebook.cells[-1]).strip() == str(root)
    if name.startswith("01"):
        assert f"dataset: {root}\n" in printed(notebook.cells[1])
        for figure in FIGURES:
            assert (tmp_path / "figures" / f"{figure}.png").stat().st_size > 0, figure
    else:
        card = json.loads((tmp_path / "models" / "model.json").read_text())
        assert card["feature_version"] == FEATURE_VERSION
        for task, table in (("dropoff", "turn_pairs"), ("escalation", "conversations")):
            metadata = card["tasks"][task]
            assert (tmp_path / "models" / f"{task}.skops").stat().st_size > 0
            scores = {m["model"]: m for m in metadata["metrics"]}
            assert scores["logistic_regression"]["roc_auc_mean"] > scores["dummy_prior"]["roc_auc_mean"], task
            assert scores["logistic_regression"]["pr_auc_mean"] > scores["dummy_prior"]["pr_auc_mean"], task
            assert scores["logistic_regression"]["brier_mean"] < scores["dummy_prior"]["brier_mean"], task
            assert metadata["dataset_version"] == store.open_table(str(root), table).version()


def printed(cell) -> str:
    """What a code cell printed on stdout."""
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def test_committed_notebooks_have_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: strip the outputs before committing"
                assert cell.execution_count is None, path.name
