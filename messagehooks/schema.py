"""Typed records of the pipeline: the Landbot payload as received and the normalized message.

The Landbot structs mirror Landbot's MessageHook payload (samples: tests/fixtures/landbot) and
tolerate unknown fields (msgspec ignores them), so a new field from Landbot never fails a
delivery; the original bytes travel alongside as `raw`.
"""

from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = 1

Role = Literal["customer", "bot", "agent", "sys", "unknown"]
"""Who sent a message. Only customer, bot and agent messages form turns."""

# `seq` is an int64 column of the dataset (dataset/store.py): a larger one would fail every
# commit of the sink, so the payload's schema (and the OpenAPI document) bound it.
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

MAX_ID_CHARS = 128
"""Longest id string accepted: ids key partitions, per-chat state and every row of a chat."""

IdText = Annotated[str, msgspec.Meta(max_length=MAX_ID_CHARS)]

# Scalars Landbot sends as ids: usually ints, sometimes strings (UUIDs, phone numbers). Bounded,
# so that a 100 KB chat id or uuid is refused (422 naming the field) instead of carried along.
Id = Int64 | IdText

# Event times are Unix seconds; outside 1970..9999 they have no UTC date to partition by.
UnixSeconds = Annotated[float, msgspec.Meta(ge=0, le=253_402_300_799, description="Unix seconds")]


class LandbotSender(msgspec.Struct, kw_only=True):
    """`sender` of a Landbot message."""

    id: Id | None = None
    name: str | None = None
    type: str | None = None


class LandbotCustomer(msgspec.Struct, kw_only=True):
    """`customer` of a Landbot message (extra keys are custom fields, kept in `raw`)."""

    id: Id | None = None
    country: str | None = None


class LandbotChannel(msgspec.Struct, kw_only=True):
    """`channel` of a Landbot message."""

    id: Id | None = None
    name: str | None = None
    type: str | None = None


class LandbotRaw(msgspec.Struct, kw_only=True):
    """`_raw`: Landbot's internal copy of the message."""

    chat: Id | None = None
    uuid: IdText | None = None
    seq: Int64 | None = None
    author_type: str | None = None
    action: str | None = None


class LandbotMessage(msgspec.Struct, kw_only=True, rename={"raw": "_raw"}):
    """One element of a MessageHook body's `messages` list."""

    type: str
    timestamp: UnixSeconds
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    sender: LandbotSender | None = None
    customer: LandbotCustomer | None = None
    channel: LandbotChannel | None = None
    raw: LandbotRaw | None = None
    action: str | None = None


class Message(msgspec.Struct, kw_only=True, frozen=True):
    """A normalized message: the record of the `messages` topic and the input of streams.

    `chat_id` is a string so that every chat id Landbot may send (int or not) keys the same way.
    Ordering within a chat is by `order_key()`: (timestamp, seq, message_id).
    """

    message_id: str
    chat_id: str
    hook: str
    type: str
    role: Role
    timestamp: float
    seq: int | None = None
    sender_id: str | None = None
    channel_id: str | None = None
    body: str | None = None
    payload: str | None = None
    options: tuple[str, ...] = ()
    action: str | None = None
    country: str | None = None
    received_at: float = 0.0
    request_id: str = ""
    raw: msgspec.Raw = msgspec.Raw(b"null")
    schema_version: int = SCHEMA_VERSION

    def order_key(self) -> tuple[float, int, str]:
        """Sort key of a message within its chat (event time, then Landbot's seq, then id)."""
        return (self.timestamp, -1 if self.seq is None else self.seq, self.message_id)

    @property
    def is_event(self) -> bool:
        """Events (assign/unassign, ...) mark a conversation but are never turns."""
        return self.type == "event"


class RawRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A record of the `raw` topic: one accepted HTTP request, keyed by its first message's chat id.

    `body` is the request body exactly as received (JSON), so every id can be re-derived from it.
    """

    schema_version: int = SCHEMA_VERSION
    request_id: str
    hook: str
    received_at: float
    headers: dict[str, str]
    body: msgspec.Raw


class DeadLetterRecord(msgspec.Struct, kw_only=True, frozen=True):
    """A record of the `dead-letter` topic: a rejected payload or record with its original bytes.

    The ingest (key: hook name) sets `request_id`, `hook`, `field` and `message_index` (the last
    two may be null); a stream worker (key: ``streams``) sets `topic`, `partition` and `offset` of
    the record it could not use. A field the writer does not set (UNSET) is absent from the JSON.
    """

    schema_version: int = SCHEMA_VERSION
    reason: str
    detail: str
    request_id: str | msgspec.UnsetType = msgspec.UNSET
    hook: str | msgspec.UnsetType = msgspec.UNSET
    received_at: float
    field: str | msgspec.UnsetType | None = msgspec.UNSET
    message_index: int | msgspec.UnsetType | None = msgspec.UNSET
    topic: str | msgspec.UnsetType = msgspec.UNSET
    partition: int | msgspec.UnsetType = msgspec.UNSET
    offset: int | msgspec.UnsetType = msgspec.UNSET
    original_encoding: str
    """``utf-8`` when `original` is the original bytes as text, else ``base64``."""
    original: str


def encode_raw_record(record: RawRecord) -> bytes:
    """JSON bytes of a record of the `raw` topic."""
    return _ENCODER.encode(record)


def encode_dead_letter(record: DeadLetterRecord) -> bytes:
    """JSON bytes of a record of the `dead-letter` topic (UNSET fields omitted)."""
    return _ENCODER.encode(record)


def encode_message(message: Message) -> bytes:
    """JSON bytes of a message as published on the `messages` topic."""
    return _ENCODER.encode(message)


def decode_message(data: bytes) -> Message:
    """Inverse of `encode_message`; raises msgspec.ValidationError on a malformed record."""
    return _MESSAGE_DECODER.decode(data)


_ENCODER = msgspec.json.Encoder()
_MESSAGE_DECODER = msgspec.json.Decoder(Message)
