"""The masking policy: complete for every table, and what it does to dead-letter originals."""

import base64
import json

import pyarrow as pa
import pytest

from dataset import tables
from dataset.rows import dead_letter_row, masker
from messagehooks.pii import EMAIL, PHONE
from messagehooks.pii.originals import PERSONAL, mask_original
from messagehooks.pii.policy import POLICY, apply


def _text_paths(schema: pa.Schema) -> set[str]:
    """Columns of `schema` holding text: strings, lists of strings, string keys of lists of structs."""
    paths = set()
    for field in schema:
        kind = field.type
        if pa.types.is_string(kind) or (pa.types.is_list(kind) and pa.types.is_string(kind.value_type)):
            paths.add(field.name)
        elif pa.types.is_list(kind) and pa.types.is_struct(kind.value_type):
            paths.update(
                f"{field.name}[].{inner.name}" for inner in kind.value_type if pa.types.is_string(inner.type)
            )
    return paths


@pytest.mark.parametrize("table", sorted(tables.SPECS))
def test_every_text_column_has_a_treatment(table):
    # A new text column must be classified (masked, or kept for a reason in the policy's docstring).
    assert set(POLICY[table]) == _text_paths(tables.SPECS[table].schema) - {tables.PARTITION_COLUMN}


def test_customer_fields_and_escaped_emails_in_a_json_original_are_masked():
    original = json.dumps(
        {
            "customer": {"name": "Ana García", "email": "ana@example.com", "phone": 34600112233},
            "data": {"body": "write to ana@example.com", "text": "or ana\\u0040example.com"},
        }
    ).replace("to ana@", "to ana\\u0040")  # escaped in the JSON text, and in the value
    masked = mask_original(original, "utf-8")
    assert "Ana" not in masked
    assert "example" not in masked
    assert "600112233" not in masked
    assert json.loads(masked)["customer"] == {"name": PERSONAL, "email": PERSONAL, "phone": PERSONAL}
    assert json.loads(masked)["data"] == {"body": f"write to {EMAIL}", "text": f"or {EMAIL}"}


def test_a_once_escaped_json_original_keeps_its_escapes():
    original = json.dumps({"raw": json.dumps({"name": "Ana García"})})
    masked = mask_original(original, "utf-8")
    assert json.loads(json.loads(masked)["raw"]) == {"name": PERSONAL}


def test_a_base64_original_of_non_utf8_bytes_is_masked_and_stays_base64():
    raw = "José escribe a jose@example.com o al +34 600 112 233\n".encode("latin-1") + b"\xff\xfe"
    masked = mask_original(base64.b64encode(raw).decode(), "base64")
    decoded = base64.b64decode(masked)
    assert decoded == "José escribe a <EMAIL> o al <PHONE>\n".encode("latin-1") + b"\xff\xfe"


def test_a_base64_original_without_pii_is_returned_unchanged():
    value = base64.b64encode(b"\xff\xfe nothing here").decode()
    assert mask_original(value, "base64") == value


def test_the_dead_letter_row_masks_through_the_policy():
    record = {
        "reason": "invalid_message",
        "detail": "bad value ana@example.com",
        "received_at": 1.0,
        "original_encoding": "utf-8",
        "original": '{"customer": {"first_name": "Ana"}, "data": {"body": "+34 600 112 233"}}',
        "schema_version": 1,
    }
    row = dead_letter_row(
        json.dumps(record).encode(), key=b"default", topic="t", partition=0, offset=1, mask=masker(True)
    )
    assert row["detail"] == f"bad value {EMAIL}"
    assert json.loads(row["original"]) == {"customer": {"first_name": PERSONAL}, "data": {"body": PHONE}}
    unmasked = dead_letter_row(
        json.dumps(record).encode(), key=b"default", topic="t", partition=0, offset=1, mask=masker(False)
    )
    assert unmasked["original"] == record["original"]


def test_apply_masks_list_items_and_keeps_what_it_should():
    row = {
        "conversation_id": "c1:1.0",
        "chat_id": "c1",
        "transcript": [{"role": "customer", "text": "mail ana@example.com", "ts": 1.0}],
        "country": "ana@example.com",
        "channel_id": "761536",
    }
    assert apply("conversations", row) == {
        "conversation_id": "c1:1.0",
        "chat_id": "c1",
        "transcript": [{"role": "customer", "text": f"mail {EMAIL}", "ts": 1.0}],
        "country": EMAIL,
        "channel_id": "761536",
    }
