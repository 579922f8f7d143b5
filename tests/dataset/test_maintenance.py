"""`messagehooks dataset stats|export|compact` on real Delta tables in tmp_path."""

import json
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from dataset import maintenance, store, tables
from dataset.rows import conversation_row, dead_letter_row, masker, message_row, pair_row
from features.batch import build_dataset
from messagehooks.errors import MessageHooksError
from messagehooks.schema import Message
from tests.factories import BASE_TS, example_chat, message

MASK = masker(True)
DAY = 86_400.0

# maintenance.stats groups turn pairs with `aggregate([("answered", "count_all")])`; pyarrow's
# count_all takes no column, so stats fails whenever the turn_pairs table exists.


def _short_chat(chat: str, base: float) -> list[Message]:
    """A customer question answered by the bot: one answered pair, one unanswered, not escalated."""
    return [
        message(chat=chat, ts=base, body="hi, pricing?", message_id=f"{chat}-1"),
        message(chat=chat, role="bot", ts=base + 3, body="It is free!", message_id=f"{chat}-2"),
    ]


def _dead_letter(reason: str, offset: int) -> dict[str, Any]:
    value = orjson.dumps({"received_at": BASE_TS + offset, "reason": reason, "detail": f"d{offset}"})
    return dead_letter_row(value, key=None, topic="landbot.dead", partition=0, offset=offset, mask=MASK)


def populate(
    root: str, chats: tuple[str, ...] = ("a", "b"), *, commits: int = 1
) -> dict[str, list[dict[str, Any]]]:
    """Write every table: example chats (+ one short chat) over `commits` appends; returns the rows."""
    messages = [m for i, chat in enumerate(chats) for m in example_chat(chat, BASE_TS + i * DAY)]
    messages += _short_chat("short", BASE_TS + 100)
    pairs, conversations = build_dataset(messages)
    rows = {
        "messages": [
            message_row(m, late=False, partition=0, offset=i, mask=MASK) for i, m in enumerate(messages)
        ],
        "turn_pairs": [pair_row(p, MASK) for p in pairs],
        "conversations": [conversation_row(c, MASK) for c in conversations],
        "dead_letters": [
            _dead_letter("invalid_message", 1),
            _dead_letter("malformed_json", 2),
            _dead_letter("invalid_message", 3),
        ],
    }
    for table, table_rows in rows.items():
        for part in range(commits):
            chunk = table_rows[part::commits]
            if chunk:
                store.write(root, table, store.rows_to_arrow(table, chunk))
    return rows


def _by_key(rows: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    key = store.spec(table).key
    return sorted(rows, key=lambda row: row[key])


def _table_rows(root: str, table: str, version: int | None = None) -> list[dict[str, Any]]:
    return _by_key(store.open_table(root, table, version).to_pyarrow_table().to_pylist(), table)


def _jsonable(value: Any) -> Any:
    """What a value becomes in JSON (dates as ISO text)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


# --- export ------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", tables.TABLES)
def test_parquet_export_equals_the_table(tmp_path, table):
    root = str(tmp_path / "ds")
    populate(root)
    out = tmp_path / "out" / f"{table}.parquet"
    rows = maintenance.export(root, table, out, version=None, fmt="parquet")
    exported = pq.read_table(out)
    original = store.open_table(root, table).to_pyarrow_table()
    assert rows == original.num_rows > 0
    assert exported.schema.remove_metadata().equals(original.schema.remove_metadata())
    assert _by_key(exported.to_pylist(), table) == _by_key(original.to_pylist(), table)


@pytest.mark.parametrize("table", ["messages", "conversations", "dead_letters"])
def test_jsonl_export_is_one_object_per_row(tmp_path, table):
    root = str(tmp_path / "ds")
    populate(root)
    out = tmp_path / f"{table}.jsonl"
    assert maintenance.export(root, table, out, version=None, fmt="jsonl") == len(_table_rows(root, table))
    lines = out.read_text(encoding="utf-8").splitlines()
    objects = [json.loads(line) for line in lines]
    assert all(isinstance(o, dict) for o in objects)
    assert _by_key(objects, table) == [_jsonable(row) for row in _table_rows(root, table)]


def test_turn_pairs_jsonl_is_the_fine_tuning_shape_of_answered_pairs(tmp_path):
    root = str(tmp_path / "ds")
    written = populate(root)["turn_pairs"]
    out = tmp_path / "pairs.jsonl"
    count = maintenance.export(root, "turn_pairs", out, version=None, fmt="jsonl")
    objects = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    answered = [row for row in _table_rows(root, "turn_pairs") if row["answered"]]
    assert 0 < len(answered) < len(written)  # the dataset has unanswered pairs: they are left out
    assert count == len(objects) == len(answered)
    assert sorted(objects, key=lambda o: o["pair_id"]) == [
        {
            "pair_id": row["pair_id"],
            "conversation_id": row["conversation_id"],
            "context": row["context"],
            "prompt_role": row["prompt_role"],
            "prompt": row["prompt_text"],
            "response_role": row["response_role"],
            "response": row["response_text"],
            "latency_s": row["latency_s"],
        }
        for row in answered
    ]
    assert all(o["response"] is not None for o in objects)


@pytest.mark.parametrize("table", tables.TABLES)
def test_csv_export_has_the_rows_with_nested_columns_as_json(tmp_path, table):
    root = str(tmp_path / "ds")
    populate(root)
    out = tmp_path / f"{table}.csv"
    assert maintenance.export(root, table, out, version=None, fmt="csv") == len(_table_rows(root, table))
    schema = store.spec(table).schema
    nested = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_struct(f.type)]
    read = pacsv.read_csv(
        out,
        convert_options=pacsv.ConvertOptions(
            column_types={f.name: pa.string() if f.name in nested else f.type for f in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    assert read.column_names == schema.names
    rows = read.to_pylist()
    for row in rows:
        for name in nested:
            assert row[name] is None or isinstance(row[name], str)
            row[name] = None if row[name] is None else json.loads(row[name])
    assert _by_key(rows, table) == _table_rows(root, table)
    if table in ("turn_pairs", "conversations", "messages"):
        assert any(isinstance(row[name], list) and row[name] for row in rows for name in nested)


def test_export_of_an_older_version(tmp_path):
    root = str(tmp_path / "ds")
    rows = populate(root, commits=3)["turn_pairs"]
    first = rows[0::3]
    out = tmp_path / "v0.parquet"
    assert maintenance.export(root, "turn_pairs", out, version=0, fmt="parquet") == len(first)
    assert _by_key(pq.read_table(out).to_pylist(), "turn_pairs") == _table_rows(root, "turn_pairs", 0)
    assert sorted(r["pair_id"] for r in pq.read_table(out).to_pylist()) == sorted(r["pair_id"] for r in first)
    jsonl = tmp_path / "v0.jsonl"
    answered = [r for r in first if r["answered"]]
    assert maintenance.export(root, "turn_pairs", jsonl, version=0, fmt="jsonl") == len(answered)
    assert len(jsonl.read_text().splitlines()) == len(answered)


def test_export_errors(tmp_path):
    root = str(tmp_path / "ds")
    populate(root)
    with pytest.raises(MessageHooksError, match="unknown export format 'xml'"):
        maintenance.export(root, "messages", tmp_path / "x.xml", version=None, fmt="xml")  # type: ignore[arg-type]  # a wrong format on purpose
    with pytest.raises(MessageHooksError, match="has no version 99"):
        maintenance.export(root, "messages", tmp_path / "x.parquet", version=99, fmt="parquet")
    with pytest.raises(store.UnknownTable):
        maintenance.export(root, "nope", tmp_path / "x.parquet", version=None, fmt="parquet")
    with pytest.raises(store.TableMissing):
        maintenance.export(
            str(tmp_path / "empty"), "messages", tmp_path / "x.parquet", version=None, fmt="parquet"
        )
    assert not (tmp_path / "x.parquet").exists()


# --- compaction --------------------------------------------------------------------------------


def _files(root: str, table: str) -> int:
    return len(store.open_table(root, table).file_uris())


def test_compaction_keeps_the_rows_in_fewer_files_as_a_new_version(tmp_path):
    root = str(tmp_path / "ds")
    # every chat on the same day: all commits land in one partition
    pairs = [
        pair_row(p, MASK) for i in range(10) for p in build_dataset(example_chat(f"c{i}", BASE_TS + i))[0]
    ]
    for i in range(10):
        store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", pairs[i::10]))
    before_rows = _table_rows(root, "turn_pairs")
    before_files, before_version = _files(root, "turn_pairs"), store.open_table(root, "turn_pairs").version()
    assert before_files == 10

    report = maintenance.compact(root, retention_hours=0)

    assert set(report) == {"turn_pairs"}  # tables never written are skipped
    after = store.open_table(root, "turn_pairs")
    assert after.version() > before_version
    assert report["turn_pairs"]["version"] == after.version()
    assert _files(root, "turn_pairs") < before_files
    assert _files(root, "turn_pairs") == 1
    assert report["turn_pairs"]["files_removed"] == before_files
    assert report["turn_pairs"]["files_added"] == 1
    assert _table_rows(root, "turn_pairs") == before_rows
    assert sorted(r["pair_id"] for r in before_rows) == sorted(r["pair_id"] for r in pairs)
    # with a zero retention the small files are gone from disk
    assert report["turn_pairs"]["files_vacuumed"] == before_files
    assert len(list(Path(root, "turn_pairs").glob("date=*/*.parquet"))) == 1
    new_operations = [
        v["operation"] for v in store.versions(root, "turn_pairs") if v["version"] > before_version
    ]
    assert "OPTIMIZE" in new_operations


def test_compaction_of_every_table_keeps_every_row(tmp_path):
    root = str(tmp_path / "ds")
    populate(root, commits=4)
    before = {t: _table_rows(root, t) for t in tables.TABLES}
    files = {t: _files(root, t) for t in tables.TABLES}
    report = maintenance.compact(root, retention_hours=0)
    assert set(report) == set(tables.TABLES)
    for table in tables.TABLES:
        assert _table_rows(root, table) == before[table], table
        assert _files(root, table) <= files[table]
    assert _files(root, "messages") < files["messages"]


# --- stats -------------------------------------------------------------------------------------


def test_stats_count_missing_tables_as_empty(tmp_path):
    root = str(tmp_path / "ds")
    assert maintenance.stats(root) == {
        "root": root,
        "tables": {name: {"version": None, "rows": 0} for name in tables.TABLES},
    }
    rows = populate(root)
    for table in ("turn_pairs", "conversations"):
        # only messages and dead letters: the branches that need turn_pairs/conversations are skipped
        Path(root, table, "_delta_log").rename(Path(root, f"{table}-log-moved"))
    stats = maintenance.stats(root)
    assert stats["tables"] == {
        "messages": {"version": 0, "rows": len(rows["messages"])},
        "turn_pairs": {"version": None, "rows": 0},
        "conversations": {"version": None, "rows": 0},
        "dead_letters": {"version": 0, "rows": 3},
    }
    assert stats["dead_letters_by_reason"] == {"invalid_message": 2, "malformed_json": 1}
    assert "pairs_by_role" not in stats
    assert "answered_rate" not in stats
    json.dumps(stats)


def test_stats_on_a_known_dataset(tmp_path):
    root = str(tmp_path / "ds")
    rows = populate(root, commits=2)
    stats = maintenance.stats(root)
    assert stats["tables"] == {
        "messages": {"version": 1, "rows": 2 * 11 + 2},
        "turn_pairs": {"version": 1, "rows": 2 * 5 + 2},
        "conversations": {"version": 1, "rows": 3},
        "dead_letters": {"version": 1, "rows": 3},
    }
    assert len(rows["turn_pairs"]) == 12
    # each example chat: bot->customer x2, customer->bot, customer->agent, agent->(none);
    # the short chat: customer->bot, bot->(none)
    assert sorted(stats["pairs_by_role"], key=lambda e: (e["prompt_role"], str(e["response_role"]))) == [
        {"prompt_role": "agent", "response_role": None, "pairs": 2},
        {"prompt_role": "bot", "response_role": None, "pairs": 1},
        {"prompt_role": "bot", "response_role": "customer", "pairs": 4},
        {"prompt_role": "customer", "response_role": "agent", "pairs": 2},
        {"prompt_role": "customer", "response_role": "bot", "pairs": 3},
    ]
    counts = [e["pairs"] for e in stats["pairs_by_role"]]
    assert counts == sorted(counts, reverse=True)
    assert stats["answered_rate"] == round(9 / 12, 4)
    assert (stats["final_pairs"], stats["answered_rate_final"]) == (12, round(9 / 12, 4))  # all closed
    assert stats["conversations"] == 3
    assert stats["escalation_rate"] == round(2 / 3, 4)
    assert stats["dead_letters_by_reason"] == {"invalid_message": 2, "malformed_json": 1}
    json.dumps(stats)
