"""Message identity and chat id: pure functions, stable across Landbot retries."""

import hashlib

import msgspec
import orjson

from messagehooks.schema import Id, LandbotMessage


def chat_id(message: LandbotMessage) -> str | None:
    """`_raw.chat`, else `customer.id` (they differ in real traffic), as a string.

    Surrounding whitespace is dropped: `" 9500302"` is chat `9500302`, as the number 9500302 is
    (a space carries no meaning in an id, and two spellings would split one chat's turns). A
    null, empty or blank one does not count: "" would merge every such customer into one chat.
    """
    candidates = (
        message.raw.chat if message.raw is not None else None,
        message.customer.id if message.customer is not None else None,
    )
    texts = (_id_text(value).strip() for value in candidates if value is not None)
    return next((text for text in texts if text), None)


def message_id(
    message: LandbotMessage,
    *,
    chat: str,
    body: str | None,
    payload: str | None,
    original: bytes,
) -> str:
    """The message's id: `_raw.uuid` (a blank one counts as none), else a hash of what it says.

    Landbot documents the uuid as the id "of this specific message" and sends random (version 4)
    UUIDs, so it is unique across chats; still, the dataset and the stream know a message by
    (chat id, message id): a uuid seen in two chats is two messages, never one (docs/ingest.md).

    The hash covers (chat, timestamp, sender type, sender id, type, body, payload) and the whole
    message as canonical JSON (sorted keys, no spaces), so a retried POST of the same message gets
    the same id, also when re-encoded (a backfill from the `raw` topic), and two messages that
    differ in any value never share one. A `sentry-trace` header is not used: it
    names a request (and its span), not a message, and one trace was seen on different messages.
    """
    if message.raw is not None and message.raw.uuid and not message.raw.uuid.isspace():
        return message.raw.uuid
    sender = message.sender
    key = orjson.dumps(
        [
            chat,
            message.timestamp,
            sender.type if sender else None,
            _id_text(sender.id) if sender and sender.id is not None else None,
            message.type,
            body,
            payload,
            hashlib.sha256(msgspec.json.encode(msgspec.json.decode(original), order="sorted")).hexdigest(),
        ]
    )
    return "hash-" + hashlib.sha256(key).hexdigest()[:32]


def _id_text(value: Id) -> str:
    return str(value)
