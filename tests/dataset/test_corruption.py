"""A torn or garbled Delta log: one line naming the table, the file and the fix; exit 2; no crash.

Real tables in tmp_path (written by the store), cut or overwritten on disk the way a crash or a
bad disk leaves them, then read by the real CLI: in-process for the dataset commands, as a
`python -m messagehooks` child for `up` and `sink`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.main import main
from cli.status import StatusBoard
from dataset import store, tables
from devtools.tansu import free_port
from tests.cli.test_dataset_cli import _one_line_error, _restore_logging  # noqa: F401 - a fixture, used by name
from tests.conftest import broker_env
from tests.dataset.test_maintenance import populate
from tests.factories import landbot_body, landbot_message

COMMITS = 6
NEWEST = f"{COMMITS - 1:020d}.json"


def _log(root: str, table: str) -> Path:
    return Path(root) / table / "_delta_log"


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An isolated environment whose dataset root is tmp_path/data/datasets."""
    for name in list(os.environ):
        if name.startswith("MESSAGEHOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESSAGEHOOKS_DATA_DIR", str(tmp_path / "data"))
    return str(tmp_path / "data" / "datasets")


@pytest.fixture
def torn(root: str) -> str:
    """Every table written over six commits; the newest commit of `messages` cut in half."""
    populate(root, commits=COMMITS)
    _cut_in_half(_log(root, "messages") / NEWEST)
    return root


@pytest.mark.parametrize(
    "argv",
    [
        ["dataset", "stats"],
        ["dataset", "versions", "messages"],
        ["dataset", "export", "messages", "OUT"],
        ["dataset", "compact"],
    ],
)
def test_dataset_commands_name_the_torn_commit_and_the_fix(torn, tmp_path, capsys, argv):
    argv = [str(tmp_path / "out.parquet") if a == "OUT" else a for a in argv]
    line = _one_line_error(capsys, argv, "'messages'", str(_log(torn, "messages") / NEWEST))
    assert "does not parse as JSON" in line
    assert f"roll the table back to version {COMMITS - 2}" in line
    assert "restore it from a backup" in line
    assert "messagehooks backfill --from-topic landbot.raw" in line
    assert "DeltaError" not in line
    assert "Kernel error" not in line


def test_a_backfill_into_a_torn_table_names_the_file(torn, tmp_path, capsys):
    deliveries = tmp_path / "deliveries.jsonl"
    message = landbot_message(chat=5, sender_type="customer", body="hello", ts=1_700_000_000.0, uuid="m1")
    deliveries.write_text(json.dumps(landbot_body(message)) + "\n")
    assert main(["backfill", "--from-file", str(deliveries)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    *progress, last = err.splitlines()
    assert all(line.startswith("backfill: ") for line in progress)  # what it read, before writing
    assert last.startswith("messagehooks: error: Delta table 'messages' is corrupt: ")
    assert str(_log(torn, "messages") / NEWEST) in last


def test_following_the_advice_rolls_the_table_back_to_the_previous_version(torn, capsys):
    (_log(torn, "messages") / NEWEST).rename(Path(torn) / "torn-commit.json")
    assert main(["dataset", "versions", "messages"]) == 0
    versions = [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()]
    assert versions == list(range(COMMITS - 1))


def test_an_older_torn_commit_is_named_without_the_rollback_advice(root, capsys):
    populate(root, commits=COMMITS)
    torn_commit = _log(root, "turn_pairs") / f"{2:020d}.json"
    _cut_in_half(torn_commit)
    line = _one_line_error(capsys, ["dataset", "versions", "turn_pairs"], str(torn_commit))
    assert "roll the table back" not in line
    assert "restore it from a backup" in line


def test_a_garbled_checkpoint_is_named_and_the_commits_behind_it_still_serve(root, capsys):
    populate(root, commits=COMMITS)
    assert main(["dataset", "compact", "--retention-hours", "1000"]) == 0  # writes a checkpoint
    capsys.readouterr()
    (checkpoint,) = _log(root, "turn_pairs").glob("*.checkpoint.parquet")
    checkpoint.write_bytes(b"\x00garbage, not parquet\x00" * 10)
    line = _one_line_error(capsys, ["dataset", "stats"], "'turn_pairs'", str(checkpoint))
    assert "does not read as a Parquet checkpoint" in line
    assert "move it and _last_checkpoint out of _delta_log" in line
    aside = Path(root) / "aside"
    aside.mkdir()
    checkpoint.rename(aside / checkpoint.name)
    (_log(root, "turn_pairs") / "_last_checkpoint").rename(aside / "_last_checkpoint")
    assert main(["dataset", "stats"]) == 0


def test_a_missing_commit_is_named(root, capsys):
    populate(root, commits=COMMITS)
    gone = _log(root, "conversations") / f"{1:020d}.json"
    gone.unlink()
    line = _one_line_error(capsys, ["dataset", "versions", "conversations"], str(gone))
    assert "is missing" in line


def test_the_status_panel_names_a_corrupt_table_instead_of_crashing(torn):
    board = StatusBoard(f"http://127.0.0.1:{free_port()}/metrics", torn)
    status = board.read()
    assert status.corrupt_tables == ["messages"]
    assert status.message_rows is None
    assert status.pair_rows is not None  # the readable table is still counted
    assert "corrupt table messages" in status.line()


_TEMPLATE: dict[str, Path] = {}


def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "root" not in _TEMPLATE:
        template = tmp_path_factory.mktemp("template") / "datasets"
        populate(str(template), commits=3)
        _TEMPLATE["root"] = template
    return _TEMPLATE["root"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(tables.TABLES), version=st.integers(0, 2), cut=st.floats(0.0, 0.999))
def test_a_commit_cut_anywhere_opens_or_is_named(tmp_path_factory, table, version, cut):
    """Cut any commit at any byte: the table opens, or the error names that very file."""
    copy = tmp_path_factory.mktemp("cut") / "datasets"
    shutil.copytree(_template(tmp_path_factory), copy)
    commit = copy / table / "_delta_log" / f"{version:020d}.json"
    data = commit.read_bytes()
    commit.write_bytes(data[: int(len(data) * cut)])
    error: Exception | None = None
    try:
        store.open_table(str(copy), table)
    except Exception as exc:  # the test is that nothing but TableCorrupt comes out
        error = exc
    if error is not None:
        assert isinstance(error, store.TableCorrupt), repr(error)
        assert [bad.path for bad in error.files] == [commit]
        assert str(commit) in str(error)
        assert "\n" not in str(error)


# --- `up` and `sink` as real processes ---------------------------------------------------------


def _run(command: list[str], data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGEHOOKS_")}
    environ |= {
        "MESSAGEHOOKS_DATA_DIR": str(data_dir),
        "MESSAGEHOOKS_PORT": str(free_port()),
        "MESSAGEHOOKS_BROKER_PORT": str(free_port()),
        "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",
        "MESSAGEHOOKS_SINK_METRICS_PORT": "0",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "messagehooks", *command],
        env=environ,
        capture_output=True,
        text=True,
        timeout=90,
        start_new_session=True,
        check=False,
    )


def _torn_data_dir(tmp_path: Path) -> tuple[Path, Path]:
    data_dir = tmp_path / "data"
    dataset = str(data_dir / "datasets")
    populate(dataset, commits=COMMITS)
    torn_commit = _log(dataset, "messages") / NEWEST
    _cut_in_half(torn_commit)
    return data_dir, torn_commit


def _assert_one_line(done: subprocess.CompletedProcess[str], torn_commit: Path) -> None:
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.startswith("messagehooks: error: Delta table 'messages' is corrupt: ")
    assert done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert str(torn_commit) in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.integration
def test_up_stops_at_start_with_one_line(engine, tmp_path):
    data_dir, torn_commit = _torn_data_dir(tmp_path)
    _assert_one_line(_run(["up", "--no-simulate"], data_dir, MESSAGEHOOKS_BROKER_ENGINE=engine), torn_commit)


@pytest.mark.integration
def test_sink_stops_at_start_with_one_line(tmp_path, broker, unique):
    data_dir, torn_commit = _torn_data_dir(tmp_path)
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"torn{unique}.",
        "MESSAGEHOOKS_SINK_GROUP": f"torn{unique}",
    }
    assert _run(["topics"], data_dir, **env).returncode == 0  # so the sink is given partitions
    _assert_one_line(_run(["sink"], data_dir, **env), torn_commit)
