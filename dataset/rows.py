"""Topic records to dataset rows (dataset/store.py schemas), with PII masked on the way.

Rows reach a dataset table only through these functions, and each goes through the masking
policy (messagehooks/pii/policy.py) as its last step, so masking cannot be forgotten by one table
or one field. Features that look at the text (e.g. `prompt_has_email`) were computed upstream
from the original, which is what a model may use without ever seeing the address itself.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from dataset.store import event_date
from dataset.tables import PARTITION_COLUMN
from features.structs import Conversation, TurnPair
from messagehooks.pii import policy
from messagehooks.schema import Message


@dataclass(frozen=True, slots=True)
class Mask:
    """The masking policy, or nothing when ``MESSAGEHOOKS_PII_MASKING`` is off."""

    enabled: bool

    def row(self, kind: str, row: dict[str, Any]) -> dict[str, Any]:
        """`row` of the table `kind` with the policy applied (in place)."""
        return policy.apply(kind, row) if self.enabled else row


_PAIR_DECODER = msgspec.json.Decoder(TurnPair)
_CONVERSATION_DECODER = msgspec.json.Decoder(Conversation)


def masker(enabled: bool) -> Mask:
    """The masking of every row: the PII policy, or nothing when it is turned off."""
    return Mask(enabled)


def message_row(
    message: Message, *, late: bool, partition: int | None, offset: int | None, mask: Mask
) -> dict[str, Any]:
    """A `messages` row; the raw Landbot JSON stays in Kafka (it carries customer fields)."""
    row = {
        "message_id": message.message_id,
        "chat_id": message.chat_id,
        "hook": message.hook,
        "type": message.type,
        "role": message.role,
        "timestamp": float(message.timestamp),
        "seq": message.seq,
        "sender_id": message.sender_id,
        "channel_id": message.channel_id,
        "body": message.body,
        "payload": message.payload,
        "options": list(message.options),
        "action": message.action,
        "country": message.country,
        "received_at": message.received_at,
        "request_id": message.request_id,
        "late": late,
        "schema_version": message.schema_version,
        "source_partition": partition,
        "source_offset": offset,
        PARTITION_COLUMN: event_date(message.timestamp),
    }
    return mask.row("messages", row)


def pair_row(value: bytes | TurnPair, mask: Mask) -> dict[str, Any]:
    """A `turn_pairs` row from a `turn-pairs` record (or a pair built in batch).

    Raises:
        msgspec.MsgspecError: the record is not a turn pair of this schema.
    """
    pair = _PAIR_DECODER.decode(value) if isinstance(value, bytes) else value
    row: dict[str, Any] = msgspec.to_builtins(pair)
    row[PARTITION_COLUMN] = event_date(row["prompt_ts"])
    return mask.row("turn_pairs", row)


def conversation_row(value: bytes | Conversation, mask: Mask) -> dict[str, Any]:
    """A `conversations` row from a `conversations` record or a batch-built conversation.

    Raises:
        msgspec.MsgspecError: the record is not a conversation of this schema.
    """
    conversation = _CONVERSATION_DECODER.decode(value) if isinstance(value, bytes) else value
    row: dict[str, Any] = msgspec.to_builtins(conversation)
    row[PARTITION_COLUMN] = event_date(row["start_ts"])
    return mask.row("conversations", row)


def incarnation_tag(incarnation: str | None) -> str:
    """12 hex digits naming a topic incarnation (``cluster id/topic id``), or "unknown"."""
    if incarnation is None:
        return "unknown"
    return hashlib.blake2b(incarnation.encode(), digest_size=6).hexdigest()


def dead_letter_row(
    value: bytes,
    *,
    key: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    mask: Mask,
    incarnation: str | None = None,
) -> dict[str, Any]:
    """A `dead_letters` row; its id is the record's position in one incarnation of the topic.

    Offsets start at 0 again in a topic created anew (or on a fresh embedded broker), so the id
    carries a tag of the incarnation (`incarnation_tag`): a re-read keeps the id, a new record
    at an old position gets a new one.

    Raises:
        orjson.JSONDecodeError: the record is not JSON.
    """
    record = orjson.loads(value)
    if not isinstance(record, dict):
        raise orjson.JSONDecodeError(
            "a dead-letter record must be a JSON object", value.decode(errors="replace"), 0
        )
    from_streams = key == b"streams"
    received_at = float(record.get("received_at") or 0.0)
    row = {
        "dead_letter_id": f"{topic}:{partition}:{offset}@{incarnation_tag(incarnation)}",
        "source": "streams" if from_streams else "ingest",
        "hook": None if from_streams else record.get("hook"),
        "request_id": record.get("request_id"),
        "received_at": received_at,
        "reason": record.get("reason"),
        "detail": _text(record.get("detail")),
        "field": _text(record.get("field")),
        "message_index": record.get("message_index"),
        "source_topic": record.get("topic"),
        "source_partition": record.get("partition"),
        "source_offset": record.get("offset"),
        "original_encoding": record.get("original_encoding"),
        "original": _text(record.get("original")),
        "schema_version": record.get("schema_version"),
        PARTITION_COLUMN: event_date(received_at),
    }
    return mask.row("dead_letters", row)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
