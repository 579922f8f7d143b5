"""`messagehooks dataset ...` and `messagehooks backfill --from-file` through `cli.main`, on tmp_path."""

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from cli.main import main
from dataset import store, tables
from dataset.rows import conversation_row, masker, message_row, pair_row
from features.batch import build_dataset
from messagehooks.schema import Message
from messagehooks.settings import load_settings
from messagehooks.validation import parse_body
from tests.dataset.test_maintenance import populate
from tests.factories import landbot_body, landbot_message

EMAIL = "ana.garcia@example.com"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main` configures the root logger onto the (captured) stderr: undo it after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An isolated environment whose dataset root is tmp_path/data/datasets."""
    for name in list(os.environ):
        if name.startswith("MESSAGEHOOKS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MESSAGEHOOKS_DATA_DIR", str(tmp_path / "data"))
    return str(tmp_path / "data" / "datasets")


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("messagehooks: error: ")
    assert captured.err.endswith("\n")
    assert captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in captured.err
    return str(captured.err)


# --- dataset versions / stats / export / compact -----------------------------------------------


def test_dataset_versions_lists_each_commit_with_its_rows(root, capsys):
    rows = populate(root, commits=3)["turn_pairs"]
    assert main(["dataset", "versions", "turn_pairs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    parsed = [line.split() for line in lines]
    assert [int(p[0]) for p in parsed] == [0, 1, 2]
    assert all(p[2] == "WRITE" and p[-1] == "rows" for p in parsed)
    assert [int(p[-2]) for p in parsed] == [len(rows[i::3]) for i in range(3)]


def test_dataset_versions_lists_the_newest_twenty_unless_told(root, capsys):
    """The sink makes ~3,600 versions an hour: the listing shows the newest and says so."""
    data = store.rows_to_arrow("dead_letters", populate(root)["dead_letters"][:1])
    for _ in range(24):
        store.write(root, "dead_letters", data)
    assert main(["dataset", "versions", "dead_letters"]) == 0
    captured = capsys.readouterr()
    assert [int(line.split()[0]) for line in captured.out.splitlines()] == list(range(5, 25))
    assert captured.err == "(the newest 20: versions 5 to 24; --limit 0 lists all)\n"
    assert main(["dataset", "versions", "dead_letters", "--limit", "0"]) == 0
    captured = capsys.readouterr()
    assert [int(line.split()[0]) for line in captured.out.splitlines()] == list(range(25))
    assert captured.err == ""


def test_dataset_versions_defaults_to_turn_pairs_and_takes_a_dataset_uri(tmp_path, root, capsys):
    other = str(tmp_path / "elsewhere")
    populate(other)
    assert main(["dataset", "--dataset-uri", other, "versions"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    # without the flag the root from MESSAGEHOOKS_DATA_DIR has no table yet
    _one_line_error(capsys, ["dataset", "versions"], "nothing written to 'turn_pairs'")


def test_dataset_stats_of_an_empty_root_is_json(root, capsys):
    Path(root).mkdir(parents=True)  # `up` has started, nothing is written yet
    assert main(["dataset", "stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["root"] == root
    assert stats["tables"] == {name: {"version": None, "rows": 0} for name in tables.TABLES}


@pytest.mark.parametrize("action", ["stats", "compact"])
def test_dataset_stats_or_compact_of_a_missing_directory_is_one_line(root, tmp_path, capsys, action):
    missing = tmp_path / "typo"
    _one_line_error(
        capsys,
        ["dataset", action, "--data-dir", str(missing)],
        f"no dataset at {missing / 'datasets'}: the directory does not exist",
        "--data-dir (or MESSAGEHOOKS_DATA_DIR)",
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["dataset", "stats", "--data-dir", "{other}"],
        ["dataset", "--data-dir", "{other}", "stats"],
        ["dataset", "--data-dir", "{root}", "stats", "--data-dir", "{other}"],
        ["dataset", "stats", "--dataset-uri", "{other}/datasets"],
        ["dataset", "--dataset-uri", "{other}/datasets", "stats"],
    ],
    ids=["after", "before", "after-wins", "uri-after", "uri-before"],
)
def test_dataset_location_flags_go_before_or_after_the_action(root, tmp_path, capsys, argv):
    other = tmp_path / "other"
    populate(str(other / "datasets"))
    paths = {"other": str(other), "root": str(Path(root).parent)}
    assert main([arg.format(**paths) for arg in argv]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["root"] == str(other / "datasets")
    assert stats["tables"]["turn_pairs"]["rows"] == 12


def test_dataset_stats_without_pairs_is_json(root, capsys):
    populate(root)
    for table in ("turn_pairs", "conversations"):
        Path(root, table, "_delta_log").rename(Path(root, f"{table}-log-moved"))
    assert main(["dataset", "stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tables"]["dead_letters"] == {"version": 0, "rows": 3}
    assert stats["tables"]["turn_pairs"] == {"version": None, "rows": 0}
    assert stats["dead_letters_by_reason"] == {"invalid_message": 2, "malformed_json": 1}


def test_dataset_stats_is_json(root, capsys):
    populate(root)
    assert main(["dataset", "stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["tables"]["turn_pairs"]["rows"] == 12
    assert stats["answered_rate"] == 0.75
    assert stats["dead_letters_by_reason"] == {"invalid_message": 2, "malformed_json": 1}


def test_dataset_export_of_version_0_as_jsonl(root, tmp_path, capsys):
    rows = populate(root, commits=2)["turn_pairs"]
    out = tmp_path / "out" / "pairs.jsonl"
    assert main(["dataset", "export", "turn_pairs", str(out), "--format", "jsonl", "--version", "0"]) == 0
    answered = sorted(r["pair_id"] for r in rows[0::2] if r["answered"])
    objects = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(o["pair_id"] for o in objects) == answered
    assert all({"prompt", "response", "context"} <= o.keys() for o in objects)
    assert f"exported {len(answered)} rows of turn_pairs to {out}" in capsys.readouterr().err
    # the latest version has both commits
    latest = tmp_path / "latest.jsonl"
    assert main(["dataset", "export", "turn_pairs", str(latest), "--format", "jsonl"]) == 0
    assert len(latest.read_text().splitlines()) == sum(1 for r in rows if r["answered"])


def test_dataset_compact(root, capsys):
    rows = populate(root, commits=4)
    before = {t: store.open_table(root, t).version() for t in tables.TABLES}
    assert main(["dataset", "compact", "--retention-hours", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == set(tables.TABLES)
    for table in tables.TABLES:
        assert report[table]["version"] > before[table]
        assert report[table]["files_removed"] >= report[table]["files_added"]
        key = store.spec(table).key
        assert sorted(store.load(table, root=root)[key]) == sorted(r[key] for r in rows[table])


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["dataset", "versions", "pairs"], ["unknown table 'pairs'", "turn_pairs"]),
        (["dataset", "export", "pairs", "out.jsonl"], ["unknown table 'pairs'"]),
        (["dataset", "versions", "conversations"], ["nothing written to 'conversations'"]),
        (["dataset", "export", "messages", "out.parquet"], ["nothing written to 'messages'"]),
    ],
)
def test_dataset_errors_are_one_line(root, tmp_path, capsys, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, argv, *needles)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_bad_version_is_one_line(root, tmp_path, capsys):
    populate(root)
    out = tmp_path / "v.jsonl"
    _one_line_error(
        capsys,
        ["dataset", "export", "turn_pairs", str(out), "--format", "jsonl", "--version", "5"],
        "table 'turn_pairs' has no version 5",
    )
    assert not out.exists()


# --- backfill --from-file ----------------------------------------------------------------------

BASE = 1_700_000_000.0
CHAT_A, CHAT_B = 1001, 2002


def _bodies() -> list[dict[str, Any]]:
    """Two chats in arrival order; one repeated delivery and one message that arrives too late."""
    first = landbot_body(
        landbot_message(chat=CHAT_A, sender_type="bot", body="Hi! How can I help?", ts=BASE, uuid="a1"),
        landbot_message(chat=CHAT_B, sender_type="customer", body="hello", ts=BASE + 1, uuid="b1"),
    )
    return [
        first,
        landbot_body(landbot_message(chat=CHAT_A, body=f"write me at {EMAIL}", ts=BASE + 5, uuid="a2")),
        landbot_body(
            landbot_message(chat=CHAT_B, sender_type="bot", body="Hey there", ts=BASE + 6, uuid="b2")
        ),
        first,  # a retried delivery: its messages are repeats
        landbot_body(
            landbot_message(chat=CHAT_A, sender_type="agent", body="Sure, Ana here", ts=BASE + 60, uuid="a3"),
            landbot_message(chat=CHAT_B, body="thanks", ts=BASE + 61, uuid="b3"),
        ),
        # older than chat A's newest (BASE + 60) by more than the default 10 s lateness
        landbot_body(landbot_message(chat=CHAT_A, body="one more thing", ts=BASE + 30, uuid="a-late")),
        landbot_body(landbot_message(chat=CHAT_A, body="ok, bye", ts=BASE + 70, uuid="a4")),
    ]


def _write_jsonl(path: Path, bodies: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(body) + b"\n" for body in bodies))


def _expected_messages(bodies: list[dict[str, Any]]) -> list[Message]:
    """The ingest's own parse of each line, as the backfill numbers them."""
    settings = load_settings()
    out = []
    for line, body in enumerate(bodies, start=1):
        parsed = parse_body(
            orjson.dumps(body),
            hook=settings.hooks[0],
            received_at=0.0,
            request_id=f"backfill-{line}",
            max_messages=1000,
        )
        assert not parsed.rejections
        out.extend(parsed.messages)
    return out


def _table(root: str, table: str, version: int | None = None) -> list[dict[str, Any]]:
    key = store.spec(table).key
    return sorted(store.open_table(root, table, version).to_pyarrow_table().to_pylist(), key=lambda r: r[key])


def _arrow_rows(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    key = store.spec(table).key
    return sorted(store.rows_to_arrow(table, rows).to_pylist(), key=lambda r: r[key])


def test_backfill_from_file_writes_the_batch_dataset(root, tmp_path, capsys):
    bodies = _bodies()
    path = tmp_path / "deliveries.jsonl"
    _write_jsonl(path, bodies)

    assert main(["backfill", "--from-file", str(path)]) == 0
    err = capsys.readouterr().err
    assert "backfill: 8 messages (2 repeats dropped, 1 late), 5 pairs, 2 conversations" in err

    arrivals = _expected_messages(bodies)
    unique: list[Message] = []
    for m in arrivals:
        if m.message_id not in {u.message_id for u in unique}:
            unique.append(m)
    assert len(unique) == 8
    on_time = [m for m in unique if m.message_id != "a-late"]
    settings = load_settings()
    pairs, conversations = build_dataset(
        on_time, conversation_gap=settings.conversation_gap, context_turns=settings.context_turns
    )
    assert pairs
    assert conversations
    mask = masker(True)
    expected = {
        "messages": [
            message_row(m, late=m.message_id == "a-late", partition=None, offset=None, mask=mask)
            for m in unique
        ],
        "turn_pairs": [pair_row(p, mask) for p in pairs],
        "conversations": [conversation_row(c, mask) for c in conversations],
    }
    for table, rows in expected.items():
        assert _table(root, table) == _arrow_rows(table, rows), table
    # plainly: the late message is stored, flagged, and in no pair; the e-mail is masked
    messages = {row["message_id"]: row for row in _table(root, "messages")}
    assert [mid for mid, row in messages.items() if row["late"]] == ["a-late"]
    assert messages["a2"]["body"] == "write me at <EMAIL>"
    pair_ids = {mid for row in _table(root, "turn_pairs") for mid in row["prompt_message_ids"]}
    pair_ids |= {mid for row in _table(root, "turn_pairs") for mid in row["response_message_ids"] or []}
    assert "a-late" not in pair_ids
    assert {"a1", "a2", "a3", "a4", "b1", "b2", "b3"} <= pair_ids
    assert not store.exists(root, "dead_letters")

    # a second backfill overwrites every table as a new version; the old one stays readable
    assert main(["backfill", "--from-file", str(path)]) == 0
    capsys.readouterr()
    for table, rows in expected.items():
        history = store.versions(root, table)
        assert [entry["version"] for entry in history] == [0, 1]
        assert _table(root, table) == _arrow_rows(table, rows), table
        assert _table(root, table, 0) == _table(root, table)


def test_backfill_of_a_missing_file_is_one_line(root, tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    _one_line_error(capsys, ["backfill", "--from-file", str(missing)], "cannot read", str(missing))
    assert not Path(root).exists() or not store.exists(root, "messages")
