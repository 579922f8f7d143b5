"""The committed topic schemas (docs/schemas/) equal the code's, and the code's records match them."""

import json

import jsonschema
import msgspec
import pytest

from docgen import schemas as contracts
from features.batch import build_dataset
from ingest.kafka_records import dead_letter_record, message_records, raw_record
from messagehooks.schema import SCHEMA_VERSION, DeadLetterRecord, encode_dead_letter
from messagehooks.topics import Topics
from messagehooks.validation import Rejection
from tests.factories import example_chat
from tests.integration.kafka_read import topic_validator, validate_record

TOPICS = Topics(prefix="c.")


def test_committed_schemas_equal_the_generated_ones():
    assert contracts.stale() == [], (
        "docs/schemas/ is out of date with the record structs: run `python -m docgen.schemas`"
    )
    committed = {p.name for p in contracts.SCHEMA_DIR.glob(f"*.v{SCHEMA_VERSION}.json")}
    assert committed == set(contracts.generated()), "a schema file of this version has no topic"


def test_check_mode_reports_a_drifted_file(tmp_path, capsys):
    assert contracts.main(["--dir", str(tmp_path)]) == 0
    assert contracts.main(["--dir", str(tmp_path), "--check"]) == 0
    (tmp_path / "turn-pairs.v1.json").write_text("{}\n")
    assert contracts.main(["--dir", str(tmp_path), "--check"]) == 1
    assert "turn-pairs.v1.json" in capsys.readouterr().err


@pytest.mark.parametrize("topic", contracts.topic_names())
def test_each_schema_is_draft_2020_12_with_the_version_const(topic):
    schema = json.loads((contracts.SCHEMA_DIR / contracts.schema_filename(topic)).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{topic}.v{SCHEMA_VERSION}.json")
    assert schema["title"]
    assert schema["description"]
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert "schema_version" in schema["required"]
    assert topic_validator(f"landbot.{topic}") is not None


def test_changelog_and_unknown_topics_have_no_schema():
    assert topic_validator("w1-chats-changelog") is None
    assert topic_validator("something-else") is None


def _valid(topic: str, value: bytes) -> dict:
    record = json.loads(value)
    validate_record(topic, record)
    return record


def test_ingest_records_match_their_schemas():
    messages = example_chat()
    for record in message_records(TOPICS, messages):
        _valid(record.topic, record.value)
    events = [r for r in message_records(TOPICS, messages) if r.topic == TOPICS.events]
    assert events, "the example chat has events"
    body = b'{"messages": [{"type": "text", "timestamp": 1, "_raw": {"chat": 1}}]}'
    raw = raw_record(
        TOPICS,
        chat_id="1",
        hook="h",
        body=body,
        request_id="r1",
        received_at=1.5,
        headers={"user-agent": "x"},
    )
    assert _valid(raw.topic, raw.value)["body"] == json.loads(body)
    for rejection in (
        Rejection("malformed_json", "bad", None, None, b"\xff{oops"),
        Rejection("invalid_message", "type missing", "type", 0, b'{"timestamp": 1}'),
    ):
        record = dead_letter_record(TOPICS, hook="h", request_id="r1", received_at=1.5, rejection=rejection)
        _valid(record.topic, record.value)


def test_worker_dead_letter_matches_and_omits_the_ingest_fields():
    value = encode_dead_letter(
        DeadLetterRecord(
            reason="undecodable_record",
            detail="Object missing required field `message_id`",
            topic="landbot.messages",
            partition=2,
            offset=17,
            received_at=1.5,
            original_encoding="utf-8",
            original='{"not": "a message"}',
        )
    )
    record = _valid(TOPICS.dead_letter, value)
    assert not {"request_id", "hook", "field", "message_index"} & set(record)


def test_stream_outputs_match_their_schemas():
    pairs, conversations = build_dataset(example_chat(), conversation_gap=60.0)
    assert pairs
    assert conversations
    for pair in pairs:
        _valid(TOPICS.turn_pairs, msgspec.json.encode(pair))
    for conversation in conversations:
        _valid(TOPICS.conversations, msgspec.json.encode(conversation))


@pytest.mark.parametrize(
    ("topic", "mutate"),
    [
        ("messages", lambda r: r.pop("chat_id")),
        ("messages", lambda r: r.update(schema_version=SCHEMA_VERSION + 1)),
        ("messages", lambda r: r.update(role="robot")),
        ("events", lambda r: r.update(type="text")),
        ("dead-letter", lambda r: r.update(original_encoding="latin-1")),
        ("dead-letter", lambda r: r.pop("request_id")),
    ],
)
def test_a_broken_record_is_reported(topic, mutate):
    messages = example_chat()
    if topic == "dead-letter":
        rejection = Rejection("invalid_message", "x", None, 0, b"{}")
        value = dead_letter_record(
            TOPICS, hook="h", request_id="r", received_at=1.0, rejection=rejection
        ).value
    else:
        value = next(r.value for r in message_records(TOPICS, messages) if r.topic.endswith(topic))
    record = json.loads(value)
    mutate(record)
    with pytest.raises(AssertionError, match=f"breaks the {topic} schema"):
        validate_record(f"c.{topic}", record)
