"""The Delta store on real tables in tmp_path: schemas, versions (time travel), txn offsets, PII."""

import json
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset import store, tables
from dataset.rows import conversation_row, dead_letter_row, masker, message_row, pair_row
from features.batch import build_dataset
from features.structs import Conversation, TurnPair
from messagehooks.errors import MessageHooksError
from messagehooks.pii import mask_pii
from messagehooks.schema import Message
from messagehooks.settings import load_settings
from tests.factories import BASE_TS, example_chat, message

EMAIL = "ana.garcia@example.com"
PHONE = "+34 600 112 233"
CARD = "4111 1111 1111 1111"  # Luhn-valid (Visa's test number)
PII = (EMAIL, PHONE, CARD)


def _pair_rows(chat: str, *, base: float = BASE_TS) -> list[dict[str, Any]]:
    pairs, _ = build_dataset(example_chat(chat, base))
    return [pair_row(p, masker(True)) for p in pairs]


def _sorted(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: row[key])


def _read(root: str, table: str, version: int | None = None) -> list[dict[str, Any]]:
    data = store.open_table(root, table, version).to_pyarrow_table()
    return _sorted(data.to_pylist(), store.spec(table).key)


# --- schemas -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "record"), [("turn_pairs", TurnPair), ("conversations", Conversation)])
def test_feature_table_schema_is_exactly_the_record_plus_date(table, record):
    names = store.spec(table).schema.names
    assert names == [*record.__struct_fields__, tables.PARTITION_COLUMN]
    assert len(set(names)) == len(names)


def test_messages_schema_is_the_message_without_raw_plus_provenance():
    names = tables.MESSAGES_SCHEMA.names
    expected = {name for name in Message.__struct_fields__ if name != "raw"}
    expected |= {"late", "source_partition", "source_offset", tables.PARTITION_COLUMN}
    assert set(names) == expected
    assert len(set(names)) == len(names)
    assert "raw" not in names


@pytest.mark.parametrize("table", tables.TABLES)
def test_every_table_is_partitioned_by_a_non_null_date_and_keyed(table):
    table_spec = store.spec(table)
    date = table_spec.schema.field(tables.PARTITION_COLUMN)
    assert date.type == pa.date32()
    assert not date.nullable
    assert not table_spec.schema.field(table_spec.key).nullable
    assert not table_spec.schema.field(table_spec.time_column).nullable


def test_built_rows_convert_to_the_schema_without_loss():
    pairs, conversations = build_dataset(example_chat("s"))
    for table, rows in (
        ("turn_pairs", [pair_row(p, masker(False)) for p in pairs]),
        ("conversations", [conversation_row(c, masker(False)) for c in conversations]),
    ):
        assert rows
        assert store.rows_to_arrow(table, rows).to_pylist() == _lists(rows)


def _lists(value: Any) -> Any:
    """`value` with tuples as lists (msgspec.to_builtins keeps tuples; Arrow gives lists)."""
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


# --- versions and time travel ------------------------------------------------------------------


def test_every_version_reads_back_exactly_the_rows_of_its_commits(tmp_path):
    root = str(tmp_path)
    commits = [_pair_rows(f"c{i}", base=BASE_TS + 86_400 * i) for i in range(4)]
    written = [store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", rows)) for rows in commits]
    assert written == [0, 1, 2, 3]
    assert all(commits)

    for k in range(4):
        expected = _sorted([row for rows in commits[: k + 1] for row in rows], "pair_id")
        frame = store.load("turn_pairs", version=k, root=root)
        assert sorted(frame["pair_id"]) == [row["pair_id"] for row in expected]
        assert _read(root, "turn_pairs", k) == _sorted(
            store.rows_to_arrow("turn_pairs", expected).to_pylist(), "pair_id"
        )
    latest = store.load("turn_pairs", root=root, columns=["pair_id", "chat_id"])
    assert list(latest.columns) == ["pair_id", "chat_id"]
    assert len(latest) == sum(map(len, commits))

    history = store.versions(root, "turn_pairs")
    assert [entry["version"] for entry in history] == [0, 1, 2, 3]
    assert [entry["rows"] for entry in history] == [len(rows) for rows in commits]
    assert all(entry["operation"] == "WRITE" for entry in history)
    assert all(entry["timestamp"].endswith("+00:00") for entry in history)


def test_a_missing_version_is_a_clear_error(tmp_path):
    root = str(tmp_path)
    store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", _pair_rows("a")))
    with pytest.raises(MessageHooksError, match=r"table 'turn_pairs' has no version 7"):
        store.load("turn_pairs", version=7, root=root)


def test_an_unknown_table_is_a_clear_error_naming_the_tables(tmp_path):
    with pytest.raises(store.UnknownTable, match=r"unknown table 'pairs'") as info:
        store.load("pairs", root=str(tmp_path))
    assert isinstance(info.value, MessageHooksError)
    for name in tables.TABLES:
        assert name in str(info.value)
    with pytest.raises(store.UnknownTable):
        store.versions(str(tmp_path), "pairs")


def test_a_table_not_written_yet_is_a_clear_error(tmp_path):
    root = str(tmp_path)
    assert not store.exists(root, "conversations")
    with pytest.raises(store.TableMissing, match=r"nothing written to 'conversations'") as info:
        store.load("conversations", root=root)
    assert isinstance(info.value, MessageHooksError)
    with pytest.raises(store.TableMissing):
        store.versions(root, "conversations")


def test_load_reads_the_root_its_caller_resolved_from_the_settings(tmp_path):
    """The store reads no environment: a notebook passes ``load_settings().dataset_root``."""
    root = load_settings({"MESSAGEHOOKS_DATA_DIR": str(tmp_path)}).dataset_root
    rows = _pair_rows("env")
    store.write(str(tmp_path / "datasets"), "turn_pairs", store.rows_to_arrow("turn_pairs", rows))
    assert len(store.load("turn_pairs", root=root)) == len(rows)
    with pytest.raises(TypeError, match="root"):
        store.load("turn_pairs")  # type: ignore[call-arg]  # no root on purpose: there is no default


# --- application transactions (the sink's offsets) ---------------------------------------------


def test_transaction_versions_follow_the_offsets_committed_with_the_rows(tmp_path):
    root = str(tmp_path)
    assert store.transaction_versions(root, "turn_pairs", ["app:t:0"]) == [None]
    store.write(
        root, "turn_pairs", store.rows_to_arrow("turn_pairs", _pair_rows("t1")), offsets={"app:t:0": 7}
    )
    assert store.transaction_versions(root, "turn_pairs", ["app:t:0", "app:t:1", "other"]) == [7, None, None]

    store.write(
        root,
        "turn_pairs",
        store.rows_to_arrow("turn_pairs", _pair_rows("t2")),
        offsets={"app:t:0": 19, "app:t:1": 3},
    )
    assert store.transaction_versions(root, "turn_pairs", ["app:t:0", "app:t:1"]) == [19, 3]
    # a commit without offsets keeps the last ones
    store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", _pair_rows("t3")))
    assert store.transaction_versions(root, "turn_pairs", ["app:t:0", "app:t:1"]) == [19, 3]
    # offsets are per table
    assert store.transaction_versions(root, "messages", ["app:t:0"]) == [None]


# --- PII masking -------------------------------------------------------------------------------


def _pii_messages() -> list[Message]:
    attrs: dict[str, Any] = {"chat": "pii", "country": "spain", "channel_id": "761536"}
    return [
        message(role="bot", ts=BASE_TS, body=f"Write to {EMAIL} or call {PHONE}", message_id="p1", **attrs),
        message(
            role="bot",
            type="dialog",
            ts=BASE_TS + 1,
            body="How do you pay?",
            options=(f"card {CARD}", f"mail {EMAIL}"),
            message_id="p2",
            **attrs,
        ),
        message(
            type="button",
            ts=BASE_TS + 5,
            body=f"card {CARD}",
            payload=f"pay:{EMAIL} {CARD}",
            message_id="p3",
            **attrs,
        ),
        message(role="bot", ts=BASE_TS + 6, body=f"Is {PHONE} your phone?", message_id="p4", **attrs),
        message(ts=BASE_TS + 20, body=f"yes, {PHONE}, and {EMAIL}", message_id="p5", **attrs),
        message(role="agent", ts=BASE_TS + 30, body=f"Noted {EMAIL} and {CARD}", message_id="p6", **attrs),
        message(ts=BASE_TS + 40, body=f"thanks! {PHONE}", message_id="p7", **attrs),
    ]


def _dead_letter_value() -> bytes:
    return orjson.dumps(
        {
            "received_at": BASE_TS,
            "reason": "invalid_message",
            "detail": f"bad message from {EMAIL} ({PHONE}) paid with {CARD}",
            "field": "$.messages[0].timestamp",
            "message_index": 0,
            "hook": "test",
            "request_id": "r1",
            "original_encoding": "utf-8",
            "original": json.dumps({"message": f"{EMAIL} {PHONE} {CARD}"}),
            "schema_version": 1,
        }
    )


def _pii_rows(enabled: bool) -> dict[str, list[dict[str, Any]]]:
    mask = masker(enabled)
    messages = _pii_messages()
    pairs, conversations = build_dataset(messages)
    return {
        "messages": [
            message_row(m, late=False, partition=0, offset=i, mask=mask) for i, m in enumerate(messages)
        ],
        "turn_pairs": [pair_row(p, mask) for p in pairs],
        "conversations": [conversation_row(c, mask) for c in conversations],
        "dead_letters": [
            dead_letter_row(
                _dead_letter_value(), key=None, topic="landbot.dead", partition=0, offset=0, mask=mask
            )
        ],
    }


def _strings(value: Any) -> list[str]:
    """Every string inside a (nested) value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _texts(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    return [s for row in rows for column in columns for s in _strings(row[column])]


def _contains_pii(texts: list[str]) -> bool:
    return any(pii in text for text in texts for pii in PII)


def test_the_pii_samples_are_masked_by_the_masker():
    assert mask_pii(EMAIL) == "<EMAIL>"
    assert mask_pii(PHONE) == "<PHONE>"
    assert mask_pii(CARD) == "<CARD>"


TEXT_COLUMNS = {
    "messages": ["body", "payload", "options"],
    "turn_pairs": [
        "prompt_text",
        "response_text",
        "prompt_options",
        "prompt_payload",
        "response_payload",
        "context",
    ],
    "conversations": ["transcript"],
    "dead_letters": ["original", "detail"],
}


@pytest.mark.parametrize("table", tables.TABLES)
def test_every_text_column_is_masked(table):
    masked, plain = _pii_rows(True)[table], _pii_rows(False)[table]
    assert masked
    for column in TEXT_COLUMNS[table]:
        plain_texts, masked_texts = _texts(plain, [column]), _texts(masked, [column])
        # the sample data puts PII in every text column, and the masked column keeps none of it
        assert _contains_pii(plain_texts), column
        assert not _contains_pii(masked_texts), (column, masked_texts)
        assert [mask_pii(text) for text in plain_texts] == masked_texts
    assert not _contains_pii(_texts(masked, list(masked[0])))


def test_the_pii_samples_reach_the_pairs_context_and_transcript():
    rows = _pii_rows(False)
    assert any(_contains_pii(_strings(row["context"])) for row in rows["turn_pairs"])
    assert any(_contains_pii(_strings(row["transcript"])) for row in rows["conversations"])
    assert any(any("<EMAIL>" in s for s in _strings(row["context"])) for row in _pii_rows(True)["turn_pairs"])


def test_features_of_the_original_text_survive_masking():
    masked = {row["pair_id"]: row for row in _pii_rows(True)["turn_pairs"]}
    plain = {row["pair_id"]: row for row in _pii_rows(False)["turn_pairs"]}
    assert masked.keys() == plain.keys()
    assert any(row["prompt_has_email"] for row in masked.values())
    for pair_id, row in masked.items():
        for column in ("prompt_chars", "prompt_has_email", "prompt_has_digits", "response_has_email"):
            assert row[column] == plain[pair_id][column]


def _all_strings_in_table(root: str, table: str) -> list[str]:
    """Every string value of the table as read back, plus of each of its parquet files."""
    texts = _strings(store.open_table(root, table).to_pyarrow_table().to_pylist())
    files = sorted(Path(root, table).rglob("*.parquet"))
    assert files
    for file in files:
        texts += _strings(pq.read_table(file).to_pylist())
    return texts


def test_no_pii_reaches_the_delta_tables(tmp_path):
    masked_root, plain_root = str(tmp_path / "masked"), str(tmp_path / "plain")
    for root, enabled in ((masked_root, True), (plain_root, False)):
        for table, rows in _pii_rows(enabled).items():
            store.write(root, table, store.rows_to_arrow(table, rows))
    for table in tables.TABLES:
        assert not _contains_pii(_all_strings_in_table(masked_root, table)), table
        # the search does find PII when masking is off
        assert _contains_pii(_all_strings_in_table(plain_root, table)), table
        # nor in the Delta log (its column statistics hold min/max string values)
        for log in Path(masked_root, table, "_delta_log").glob("*.json"):
            text = log.read_text()
            assert not any(pii in text for pii in PII), (table, log.name)
        for file in Path(masked_root, table).rglob("*.parquet"):
            data = file.read_bytes()
            assert not any(pii.encode() in data for pii in PII), (table, file.name)


def test_a_dead_letter_at_an_old_position_of_a_new_topic_incarnation_gets_a_new_id():
    """Offsets start at 0 again on a fresh broker: position alone merged new dead letters into old ones."""
    mask = masker(True)

    def dead_letter_id(incarnation: str | None) -> str:
        row = dead_letter_row(
            _dead_letter_value(),
            key=None,
            topic="t",
            partition=0,
            offset=3,
            mask=mask,
            incarnation=incarnation,
        )
        return str(row["dead_letter_id"])

    first, again, fresh = dead_letter_id("c1/t1"), dead_letter_id("c1/t1"), dead_letter_id("c2/t9")
    assert first == again  # a re-read of the same record keeps its id
    assert first != fresh
    assert first.startswith("t:0:3@")
    assert dead_letter_id(None).endswith("@unknown")
