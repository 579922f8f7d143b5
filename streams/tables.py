"""Topic records to dataset rows (messagehooks/store.py schemas), with PII masked on the way.

Text reaches a dataset table only through these functions, so masking cannot be forgotten by
one table. Features that look at the text (e.g. `prompt_has_email`) were computed upstream from
the original, which is what a model may use without ever seeing the address itself.
"""

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from features.records import Conversation, TurnPair
from messagehooks.pii import mask_pii
from messagehooks.schema import Message
from messagehooks.store import PARTITION_COLUMN, event_date

Mask = Callable[[str], str]

_PAIR_DECODER = msgspec.json.Decoder(TurnPair)
_CONVERSATION_DECODER = msgspec.json.Decoder(Conversation)


def masker(enabled: bool) -> Mask:
    """The text filter of every text column: PII masking, or identity when it is turned off."""
    return mask_pii if enabled else _identity


def message_row(
    message: Message, *, late: bool, partition: int | None, offset: int | None, mask: Mask
) -> dict[str, Any]:
    """A `messages` row; the raw Landbot JSON stays in Kafka (it carries customer fields)."""
    return {
        "message_id": message.message_id,
        "chat_id": message.chat_id,
        "hook": message.hook,
        "type": message.type,
        "role": message.role,
        "timestamp": float(message.timestamp),
        "seq": message.seq,
        "sender_id": message.sender_id,
        "channel_id": message.channel_id,
        "body": _mask(message.body, mask),
        "payload": _mask(message.payload, mask),
        "options": [mask(option) for option in message.options],
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


def pair_row(value: bytes | TurnPair, mask: Mask) -> dict[str, Any]:
    """A `turn_pairs` row from a `turn-pairs` record (or a pair built in batch).

    Raises:
        msgspec.MsgspecError: the record is not a turn pair of this schema.
    """
    pair = _PAIR_DECODER.decode(value) if isinstance(value, bytes) else value
    row: dict[str, Any] = msgspec.to_builtins(pair)
    row["prompt_text"] = mask(row["prompt_text"])
    row["response_text"] = _mask(row["response_text"], mask)
    row["prompt_options"] = [mask(option) for option in row["prompt_options"]]
    row["prompt_payload"] = _mask(row["prompt_payload"], mask)
    row["response_payload"] = _mask(row["response_payload"], mask)
    row["context"] = [{"role": turn["role"], "text": mask(turn["text"])} for turn in row["context"]]
    row[PARTITION_COLUMN] = event_date(row["prompt_ts"])
    return row


def conversation_row(value: bytes | Conversation, mask: Mask) -> dict[str, Any]:
    """A `conversations` row from a `conversations` record or a batch-built conversation.

    Raises:
        msgspec.MsgspecError: the record is not a conversation of this schema.
    """
    conversation = _CONVERSATION_DECODER.decode(value) if isinstance(value, bytes) else value
    row: dict[str, Any] = msgspec.to_builtins(conversation)
    row["transcript"] = [{**entry, "text": mask(entry["text"])} for entry in row["transcript"]]
    row[PARTITION_COLUMN] = event_date(row["start_ts"])
    return row


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
    return {
        "dead_letter_id": f"{topic}:{partition}:{offset}@{incarnation_tag(incarnation)}",
        "source": "streams" if from_streams else "ingest",
        "hook": None if from_streams else record.get("hook"),
        "request_id": record.get("request_id"),
        "received_at": received_at,
        "reason": record.get("reason"),
        "detail": _mask(_text(record.get("detail")), mask),
        "field": _text(record.get("field")),
        "message_index": record.get("message_index"),
        "source_topic": record.get("topic"),
        "source_partition": record.get("partition"),
        "source_offset": record.get("offset"),
        "original_encoding": record.get("original_encoding"),
        "original": _mask(_text(record.get("original")), mask),
        "schema_version": record.get("schema_version"),
        PARTITION_COLUMN: event_date(received_at),
    }


def _mask(text: str | None, mask: Mask) -> str | None:
    return None if text is None else mask(text)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _identity(text: str) -> str:
    return text


def is_late(timestamp: float, newest: float | None, allowed_lateness: float) -> bool:
    """The `late` flag of the messages table (the stream's rule, docs/streams.md).

    Late = older than the chat's newest message by more than the allowed lateness; such a
    message is stored but not paired.
    """
    return newest is not None and timestamp < newest - allowed_lateness
