"""JSON Schemas (draft 2020-12) of every topic's records and export lines, made from msgspec structs.

The committed files in ``docs/schemas/<topic>.v<SCHEMA_VERSION>.json`` are the published
contract (docs/topics.md, docs/asyncapi.yaml); ``tests/contracts/test_schemas.py`` fails when
they differ from what this module generates. Regenerate them with::

    python -m docgen.schemas          # write docs/schemas/
    python -m docgen.schemas --check  # exit 1 if the files are out of date

Every field the encoder always writes is ``required`` (msgspec writes every field of a struct,
defaults included, except fields left UNSET), and objects stay open (``additionalProperties``
is not false), so adding a field is compatible while removing or retyping one needs a new
``schema_version``.
"""

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from features.chat import ChatLine
from features.structs import Conversation, TurnPair
from messagehooks.schema import SCHEMA_VERSION, DeadLetterRecord, Message, RawRecord
from messagehooks.topics import Topics

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://messagehooks.example/schemas/"
"""Base of each schema's ``$id``: an identifier, not a location (the files live in docs/schemas/)."""

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "docs" / "schemas"

TOPIC_RECORDS: dict[str, type[msgspec.Struct]] = {
    "raw": RawRecord,
    "messages": Message,
    "events": Message,
    "turn-pairs": TurnPair,
    "conversations": Conversation,
    "dead-letter": DeadLetterRecord,
}
"""Record type of each topic, by its name without the prefix (docs/topics.md)."""

TOPIC_KEYS: dict[str, str] = {
    "raw": "chat id of the request's first accepted message",
    "messages": "chat id",
    "events": "chat id",
    "turn-pairs": "chat id",
    "conversations": "chat id",
    "dead-letter": "hook name (ingest) or `streams` (stream worker)",
}
"""What the (UTF-8) Kafka key of each topic's records is."""

_ORIGINAL = " Personal data as received: for authorized reprocessing, not for other teams."
_MASKED = (
    " Personal data masked (`<EMAIL>`, `<PHONE>`, `<CARD>`, `<IBAN>`) by the policy of"
    " messagehooks/pii/policy.py, unless the operator set MESSAGEHOOKS_MASK_TOPICS=false."
)

TOPIC_PERSONAL_DATA: dict[str, str] = {
    "raw": "original",
    "messages": "original",
    "events": "original",
    "turn-pairs": "masked",
    "conversations": "masked",
    "dead-letter": "original",
}
"""Whether each topic carries personal data as received or masked (docs/topics.md)."""

_TOPIC_DESCRIPTIONS: dict[str, str] = {
    "raw": "One record per accepted HTTP request: the whole body as received, the hook, the time "
    "and the request id (enough to re-derive every message id in a backfill)." + _ORIGINAL,
    "messages": "One normalized Landbot message per record; `raw` is the original message." + _ORIGINAL,
    "events": "The `type: event` messages (assign, unassign, ...), also published on `messages`." + _ORIGINAL,
    "turn-pairs": "One turn pair (a prompt turn and the turn answering it, or none) with its features."
    + _MASKED,
    "conversations": "One closed conversation with its features and transcript." + _MASKED,
    "dead-letter": "A rejected payload or record, with the reason and the original bytes." + _ORIGINAL,
}

_FIELD_NOTES: dict[str, dict[str, dict[str, Any]]] = {
    "Message": {
        "raw": {"description": "The original Landbot message exactly as received: arbitrary JSON."},
        "message_id": {
            "description": "Id within its chat, kept by a retry: deduplicate by chat_id and message_id."
        },
        "timestamp": {"description": "Event time (Landbot's, seconds since the epoch)."},
        "received_at": {"description": "When the ingest accepted the request (seconds since the epoch)."},
    },
    "RawRecord": {
        "body": {"description": "The request body exactly as received: arbitrary JSON."},
        "headers": {"description": "The request headers kept for id derivation (no credentials)."},
    },
    "DeadLetterRecord": {
        "original_encoding": {"enum": ["utf-8", "base64"]},
        "original": {
            "description": "The rejected bytes: text when `original_encoding` is utf-8, else base64."
        },
    },
}

# Which writer set a dead letter. Each branch names its required fields under `properties` with
# the schema `true` (no constraint: the root's definitions apply), so that strict validators such
# as ajv's (strictRequired) accept the branch; what the schema accepts does not change.
_DEAD_LETTER_WRITERS = [
    {"title": title, "properties": dict.fromkeys(fields, True), "required": fields}
    for title, fields in (
        ("from the ingest", ["request_id", "hook", "field", "message_index"]),
        ("from a stream worker", ["topic", "partition", "offset"]),
    )
]


def topic_names() -> tuple[str, ...]:
    """The topics' names without prefix, in the order of docs/topics.md."""
    return Topics(prefix="").all()


def schema_filename(topic: str) -> str:
    """``<topic>.v<SCHEMA_VERSION>.json``: the file of a topic's schema in docs/schemas/."""
    return f"{topic}.v{SCHEMA_VERSION}.json"


def topic_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema of the records of `topic` (a name without prefix, e.g. ``turn-pairs``)."""
    record_type = TOPIC_RECORDS[topic]
    name = record_type.__name__
    _, components = msgspec.json.schema_components([_schema_view(record_type)], ref_template="#/$defs/{name}")
    for component in components.values():
        if "description" in component:
            component["description"] = inspect.cleandoc(component["description"])
    root = components.pop(name)
    properties: dict[str, Any] = root["properties"]
    properties["schema_version"] = {
        "type": "integer",
        "const": SCHEMA_VERSION,
        "description": "Version of this record format; a change that is not a new optional field bumps it.",
    }
    for field, note in _FIELD_NOTES.get(name, {}).items():
        properties[field] = {**properties[field], **note}
    if topic == "events":
        properties["type"] = {**properties["type"], "const": "event"}
    root["required"] = [
        f.encode_name for f in msgspec.structs.fields(record_type) if f.default is not msgspec.UNSET
    ]
    if record_type is DeadLetterRecord:
        root["anyOf"] = _DEAD_LETTER_WRITERS
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": SCHEMA_ID_BASE + schema_filename(topic),
        "title": f"{topic} record ({name}, schema_version {SCHEMA_VERSION})",
        "description": f"{_TOPIC_DESCRIPTIONS[topic]} Kafka key: {TOPIC_KEYS[topic]}.\n\n"
        f"{root.pop('description', '')}".rstrip(),
    }
    root.pop("title", None)
    schema.update(root)
    if components:
        schema["$defs"] = dict(sorted(components.items()))
    return schema


EXPORT_RECORDS: dict[str, tuple[type[msgspec.Struct], str]] = {
    "chat-jsonl": (
        ChatLine,
        "One line of `messagehooks dataset export --format chat-jsonl`: a closed conversation as "
        'role-tagged messages, PII masked as in the tables (docs/dataset.md, "Exports").',
    ),
}
"""The record of each export format with lines, and what a line is (not a topic: no schema_version)."""


def export_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a line of the export format `name` (e.g. ``chat-jsonl``)."""
    record_type, description = EXPORT_RECORDS[name]
    _, components = msgspec.json.schema_components([record_type], ref_template="#/$defs/{name}")
    for component in components.values():
        component.pop("title", None)
        if "description" in component:
            component["description"] = inspect.cleandoc(component["description"])
    root = components.pop(record_type.__name__)
    schema: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": SCHEMA_ID_BASE + schema_filename(name),
        "title": f"{name} line ({record_type.__name__})",
        "description": description,
        **{key: value for key, value in root.items() if key != "description"},
    }
    if components:
        schema["$defs"] = dict(sorted(components.items()))
    return schema


def render(schema: dict[str, Any]) -> str:
    """The text of a schema file (stable: indented, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated() -> dict[str, str]:
    """File name -> text of every topic's schema and every export line's, as the code defines them now."""
    topics = {schema_filename(topic): render(topic_schema(topic)) for topic in topic_names()}
    return topics | {schema_filename(name): render(export_schema(name)) for name in EXPORT_RECORDS}


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every topic's schema to `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, text in generated().items():
        path = directory / filename
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the schema files in `directory` that are missing or differ from the code."""
    return [
        filename
        for filename, text in generated().items()
        if not (directory / filename).is_file() or (directory / filename).read_text(encoding="utf-8") != text
    ]


def _schema_view(record_type: type[msgspec.Struct]) -> type[msgspec.Struct]:
    """`record_type`, or a same-named copy whose `msgspec.Raw` fields are `Any`.

    msgspec cannot render a `Raw` default (``Message.raw``) in a schema; a Raw value is any JSON.
    """
    fields = msgspec.structs.fields(record_type)
    if not any(f.type is msgspec.Raw for f in fields):
        return record_type
    spec: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in fields:
        if f.type is msgspec.Raw:
            raw_default = f.default if isinstance(f.default, msgspec.Raw) else None
            spec.append(
                (f.name, Any) if raw_default is None else (f.name, Any, msgspec.json.decode(raw_default))
            )
        elif f.default is not msgspec.NODEFAULT:
            spec.append((f.name, f.type, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            spec.append((f.name, f.type, msgspec.field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, f.type))
    rename = {f.name: f.encode_name for f in fields if f.name != f.encode_name} or None
    view = msgspec.defstruct(record_type.__name__, spec, kw_only=True, rename=rename)
    view.__doc__ = record_type.__doc__
    return view


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the topic schemas in docs/schemas/."""
    parser = argparse.ArgumentParser(prog="python -m docgen.schemas", description=main.__doc__)
    parser.add_argument(
        "--dir", type=Path, default=SCHEMA_DIR, help="output directory (default: docs/schemas)"
    )
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(args.dir)
        for filename in out_of_date:
            sys.stderr.write(f"out of date: {args.dir / filename}\n")
        return 1 if out_of_date else 0
    for path in write_schemas(args.dir):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
