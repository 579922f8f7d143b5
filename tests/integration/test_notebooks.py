"""The notebooks run end to end on a dataset built by the real pipeline, and the models learn.

Simulated Landbot traffic -> ingest -> broker -> worker -> sink -> Delta; then both notebooks
execute with nbclient (any error fails the test), and the saved baselines beat the dummy.
"""

import json
import os
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from messagehooks import store
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.integration.traffic import conversation_traffic, deliveries

pytestmark = pytest.mark.integration

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
GAP = 3.0


@pytest.fixture(scope="module")
def simulated_dataset(broker, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("notebooks")
    unique = os.urandom(4).hex()
    env = {
        "MESSAGEHOOKS_BROKER_PORT": str(broker.port),
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
        messages = conversation_traffic(300, seed=5, spacing=0.05)
        with httpx.Client(base_url=ingest.url, timeout=10) as client:
            for body in deliveries(messages, seed=5):
                assert client.post("/hooks/default", content=body).status_code == 200
        root = str(tmp / "data" / "datasets")
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if store.exists(root, "conversations") and len(store.load("conversations", root=root)) >= 300:
                break
            time.sleep(0.5)
        assert len(store.load("conversations", root=root)) == 300
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
        metadata = json.loads((tmp_path / "models" / "dropoff" / "metadata.json").read_text())
        scores = {m["model"]: m for m in metadata["metrics"]}
        assert scores["logistic_regression"]["roc_auc_mean"] > scores["dummy_prior"]["roc_auc_mean"]
        assert scores["logistic_regression"]["pr_auc_mean"] > scores["dummy_prior"]["pr_auc_mean"]
        assert metadata["dataset_version"] == store.open_table(simulated_dataset, "turn_pairs").version()


def test_committed_notebooks_have_no_outputs():
    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs, f"{path.name}: strip the outputs before committing"
                assert cell.execution_count is None, path.name
