"""The Kafka records one accepted request produces (docs/topics.md): raw, messages, events, dead-letter."""

from collections.abc import Sequence

import msgspec

from messagehooks.deadletter import encode_original
from messagehooks.kafka import ProducerRecord
from messagehooks.schema import (
    DeadLetterRecord,
    Message,
    RawRecord,
    encode_dead_letter,
    encode_message,
    encode_raw_record,
)
from messagehooks.topics import Topics
from messagehooks.validation import Rejection


def message_records(topics: Topics, messages: Sequence[Message]) -> list[ProducerRecord]:
    """Each message on `messages` (and events also on `events`), keyed by chat id."""
    records: list[ProducerRecord] = []
    for message in messages:
        value = encode_message(message)
        key = message.chat_id.encode()
        records.append(ProducerRecord(topics.messages, key, value))
        if message.is_event:
            records.append(ProducerRecord(topics.events, key, value))
    return records


def raw_record(
    topics: Topics,
    *,
    chat_id: str,
    hook: str,
    body: bytes,
    request_id: str,
    received_at: float,
    headers: dict[str, str],
) -> ProducerRecord:
    """The whole accepted body with what is needed to re-derive every id from it (backfill).

    Keyed by `chat_id`, the chat of the request's first accepted message: a chat's deliveries
    then share a partition, in order, with its `messages`, and many chats spread over all
    partitions. The body stays whole (never split per chat) so a backfill derives each message
    once; a rare request mixing chats sits in its first chat's partition (docs/topics.md).
    """
    record = RawRecord(
        request_id=request_id,
        hook=hook,
        received_at=received_at,
        headers=headers,
        body=msgspec.Raw(body),
    )
    return ProducerRecord(topics.raw, chat_id.encode(), encode_raw_record(record))


MAX_ORIGINAL_BYTES = 65_536
"""Bytes of a rejected payload kept in its dead letter: enough to debug, never a record too big."""


def dead_letter_record(
    topics: Topics, *, hook: str, request_id: str, received_at: float, rejection: Rejection
) -> ProducerRecord:
    """A rejected body or message with its reason and its original bytes (the first 64 KiB)."""
    detail = rejection.detail
    kept = rejection.original
    if len(kept) > MAX_ORIGINAL_BYTES:
        detail = f"{detail} (original truncated to its first {MAX_ORIGINAL_BYTES} of {len(kept)} bytes)"
        kept = kept[:MAX_ORIGINAL_BYTES]
    original = encode_original(kept)
    record = DeadLetterRecord(
        request_id=request_id,
        hook=hook,
        received_at=received_at,
        reason=rejection.reason,
        detail=detail,
        field=rejection.field,
        message_index=rejection.index,
        original_encoding=original["original_encoding"],
        original=original["original"],
    )
    return ProducerRecord(topics.dead_letter, hook.encode(), encode_dead_letter(record))
