"""The notebooks run end to end on a dataset built by the real pipeline, and the models learn.

Simulated Landbot traffic -> ingest -> broker -> worker -> sink -> Delta; then both notebooks
execute with nbclient (any error fails the test), and the saved baselines beat the dummy.
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

from messagehooks import store
from messagehooks.simulate import SimulationOptions, simulate
from tests.conftest import broker_env
from tests.integration.engines import ENGINES
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
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
def simulated_dataset(request, tmp_path_factory) -> str:
    """The dataset the pipeline builds on the session broker of each engine in turn (a module
    fixture cannot ask for conftest's per-test `broker`; it asks for `tansu` or `kafka`)."""
    broker = request.getfixturevalue(request.param)
    tmp = tmp_path_factory.mktemp("notebooks")
    unique = os.urandom(4).hex()
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"nb{unique}.",
        "MESSAGEHOOKS_DATA_DIR": str(tmp / "data"),
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
        root = str(tmp / "data" / "datasets")
        deadline = time.monotonic() + 180  # the last conversations close GAP after their end
        while time.monotonic() < deadline:
            if (
                store.exists(root, "conversations")
                and len(store.load("conversations", root=root)) >= conversations
            ):
                break
            time.sleep(0.5)
        assert len(store.load("conversations", root=root)) == conversations
        yield root
    finally:
        for process in processes:
            process.stop()


@pytest.mark.parametrize("name", ["01-explore-dataset.ipynb", "02-train-baselines.ipynb"])
def test_notebook_runs_end_to_end(name, simulated_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("MESSAGEHOOKS_DATASET_URI", simulated_dataset)
    monkeypatch.setenv("NOTEBOOK_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("NOTEBOOK_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOKS.parent))
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    if name.startswith("01"):
        assert (tmp_path / "figures" / "dropoff-per-prompt.png").stat().st_size > 0
    else:
        for task, table in (("dropoff", "turn_pairs"), ("escalation", "conversations")):
            metadata = json.loads((tmp_path / "models" / task / "metadata.json").read_text())
            scores = {m["model"]: m for m in metadata["metrics"]}
            assert scores["logistic_regression"]["roc_auc_mean"] > scores["dummy_prior"]["roc_auc_mean"], task
            assert scores["logistic_regression"]["pr_auc_mean"] > scores["dummy_prior"]["pr_auc_mean"], task
            assert scores["logistic_regression"]["brier_mean"] < scores["dummy_prior"]["brier_mean"], task
            assert metadata["dataset_version"] == store.open_table(simulated_dataset, table).version()


def test_committed_notebooks_have_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: strip the outputs before committing"
                assert cell.execution_count is None, path.name
