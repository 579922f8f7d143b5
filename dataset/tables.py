"""The dataset's four tables: names, explicit schemas, row ids and the partition column.

Each table is partitioned by the UTC `date` of its event time and keyed by a deterministic id
that the sink uses to drop repeats. The schemas are written out here, not inferred, so a column
never changes type with the data of one batch (docs/dataset.md lists them: `schema_markdown`).
Reading and writing the tables is `dataset.store`'s.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

PARTITION_COLUMN = "date"
TableName = Literal["messages", "turn_pairs", "conversations", "dead_letters"]
TABLES: tuple[TableName, ...] = ("messages", "turn_pairs", "conversations", "dead_letters")

_strings = pa.list_(pa.string())

MESSAGES_SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string(), nullable=False),
        pa.field("chat_id", pa.string(), nullable=False),
        pa.field("hook", pa.string()),
        pa.field("type", pa.string()),
        pa.field("role", pa.string()),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("seq", pa.int64()),
        pa.field("sender_id", pa.string()),
        pa.field("channel_id", pa.string()),
        pa.field("body", pa.string()),
        pa.field("payload", pa.string()),
        pa.field("options", _strings),
        pa.field("action", pa.string()),
        pa.field("country", pa.string()),
        pa.field("received_at", pa.float64()),
        pa.field("request_id", pa.string()),
        pa.field("late", pa.bool_(), nullable=False),
        pa.field("schema_version", pa.int32()),
        pa.field("source_partition", pa.int32()),
        pa.field("source_offset", pa.int64()),
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    ]
)

_context_turn = pa.struct([pa.field("role", pa.string()), pa.field("text", pa.string())])

TURN_PAIRS_SCHEMA = pa.schema(
    [
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field("chat_id", pa.string(), nullable=False),
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("pair_index", pa.int64()),
        pa.field("prompt_role", pa.string()),
        pa.field("prompt_text", pa.string()),
        pa.field("prompt_types", _strings),
        pa.field("prompt_options", _strings),
        pa.field("prompt_payload", pa.string()),
        pa.field("prompt_ts", pa.float64(), nullable=False),
        pa.field("prompt_turn_index", pa.int64()),
        pa.field("prompt_message_ids", _strings),
        pa.field("response_role", pa.string()),
        pa.field("response_text", pa.string()),
        pa.field("response_types", _strings),
        pa.field("response_payload", pa.string()),
        pa.field("response_ts", pa.float64()),
        pa.field("response_message_ids", _strings),
        pa.field("latency_s", pa.float64()),
        pa.field("answered", pa.bool_()),
        pa.field("context", pa.list_(_context_turn)),
        pa.field("prompt_chars", pa.int64()),
        pa.field("prompt_words", pa.int64()),
        pa.field("response_chars", pa.int64()),
        pa.field("response_words", pa.int64()),
        pa.field("prompt_is_button", pa.bool_()),
        pa.field("response_is_button", pa.bool_()),
        pa.field("prompt_option_count", pa.int64()),
        pa.field("hour_of_day", pa.int64()),
        pa.field("weekday", pa.int64()),
        pa.field("country", pa.string()),
        pa.field("channel_id", pa.string()),
        pa.field("agent_assigned", pa.bool_()),
        pa.field("prompt_has_question", pa.bool_()),
        pa.field("prompt_has_digits", pa.bool_()),
        pa.field("prompt_has_email", pa.bool_()),
        pa.field("prompt_has_url", pa.bool_()),
        pa.field("response_has_question", pa.bool_()),
        pa.field("response_has_digits", pa.bool_()),
        pa.field("response_has_email", pa.bool_()),
        pa.field("response_has_url", pa.bool_()),
        pa.field("feature_version", pa.int32()),
        pa.field("schema_version", pa.int32()),
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    ]
)

_transcript_entry = pa.struct(
    [pa.field("role", pa.string()), pa.field("text", pa.string()), pa.field("ts", pa.float64())]
)

CONVERSATIONS_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("chat_id", pa.string(), nullable=False),
        pa.field("start_ts", pa.float64(), nullable=False),
        pa.field("end_ts", pa.float64()),
        pa.field("duration_s", pa.float64()),
        *(
            pa.field(name, pa.int64())
            for name in (
                "message_count",
                "customer_messages",
                "bot_messages",
                "agent_messages",
                "sys_messages",
                "unknown_messages",
                "event_messages",
                "turn_count",
                "customer_turns",
                "bot_turns",
                "agent_turns",
                "pair_count",
                "answered_pair_count",
            )
        ),
        pa.field("first_response_latency_s", pa.float64()),
        pa.field("median_customer_latency_s", pa.float64()),
        pa.field("escalated", pa.bool_()),
        pa.field("time_to_assignment_s", pa.float64()),
        pa.field("abandoned", pa.bool_()),
        pa.field("transcript", pa.list_(_transcript_entry)),
        pa.field("country", pa.string()),
        pa.field("channel_id", pa.string()),
        pa.field("feature_version", pa.int32()),
        pa.field("schema_version", pa.int32()),
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    ]
)

DEAD_LETTERS_SCHEMA = pa.schema(
    [
        pa.field("dead_letter_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("hook", pa.string()),
        pa.field("request_id", pa.string()),
        pa.field("received_at", pa.float64(), nullable=False),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("field", pa.string()),
        pa.field("message_index", pa.int64()),
        pa.field("source_topic", pa.string()),
        pa.field("source_partition", pa.int64()),
        pa.field("source_offset", pa.int64()),
        pa.field("original_encoding", pa.string()),
        pa.field("original", pa.string()),
        pa.field("schema_version", pa.int32()),
        pa.field(PARTITION_COLUMN, pa.date32(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A dataset table: its schema, the id that makes a row unique, and its event-time column."""

    name: TableName
    schema: pa.Schema
    key: str
    time_column: str
    scope: str | None = None
    """The column the key is unique within (None: the whole table)."""

    @property
    def id_columns(self) -> tuple[str, ...]:
        """The columns that identify a row: (scope, key), or (key,)."""
        return (self.key,) if self.scope is None else (self.scope, self.key)


SPECS: Mapping[TableName, TableSpec] = {
    # A message id is unique within its chat: a uuid seen in two chats is two messages.
    "messages": TableSpec("messages", MESSAGES_SCHEMA, "message_id", "timestamp", scope="chat_id"),
    "turn_pairs": TableSpec("turn_pairs", TURN_PAIRS_SCHEMA, "pair_id", "prompt_ts"),
    "conversations": TableSpec("conversations", CONVERSATIONS_SCHEMA, "conversation_id", "start_ts"),
    "dead_letters": TableSpec("dead_letters", DEAD_LETTERS_SCHEMA, "dead_letter_id", "received_at"),
}


COLUMN_DOCS: Mapping[str, str] = {
    "date": "UTC date of the row's event time (the partition column)",
    "late": "arrived more than ALLOWED_LATENESS older than its chat's newest message: stored, not paired",
    "source_partition": "Kafka partition of the `messages` record (null when backfilled)",
    "source_offset": "Kafka offset of the `messages` record (null when backfilled)",
    "dead_letter_id": "`{topic}:{partition}:{offset}@{tag}`: the record's position; the tag names the "
    "topic's incarnation",
    "source": "`ingest` (rejected payload) or `streams` (record the worker could not process)",
    "original": "the rejected bytes as text (base64 when not UTF-8), PII masked",
}


def schema_markdown() -> str:
    """The column tables of docs/dataset.md (a test keeps the doc equal to this)."""
    lines: list[str] = []
    for name, table in SPECS.items():
        lines += [
            f"### `{name}`",
            "",
            f"Key `{', '.join(table.id_columns)}`, partitioned by `{PARTITION_COLUMN}` "
            f"(of `{table.time_column}`).",
            "",
        ]
        lines += ["| column | type | null | note |", "|---|---|---|---|"]
        for column in table.schema:
            note = COLUMN_DOCS.get(column.name, "")
            lines.append(
                f"| `{column.name}` | `{column.type}` | {'yes' if column.nullable else 'no'} | {note} |"
            )
        lines.append("")
    return "\n".join(lines)
