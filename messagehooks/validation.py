"""Pure validation and normalization: request bytes -> normalized messages and rejections.

The envelope is decoded with each message kept as raw bytes (`msgspec.Raw`), so every message
is validated on its own: one bad message is dead-lettered with its original bytes while the
valid ones of the same POST are kept (docs/ingest.md).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from messagehooks.errors import InvalidPayload
from messagehooks.identity import chat_id, message_id
from messagehooks.pii.ids import NO_SALT, Pseudonyms
from messagehooks.schema import LandbotMessage, Message, Role
from messagehooks.settings import Hook

_ROLE_OF_SENDER: Mapping[str, Role] = {
    "customer": "customer",
    "user": "customer",
    "bot": "bot",
    "agent": "agent",
    "sys": "sys",
    "system": "sys",
}
_OPTION_KEYS = ("buttons", "options", "choices")
_OPTION_TEXT_KEYS = ("text", "label", "title", "body", "name")


class Envelope(msgspec.Struct):
    """A MessageHook body: ``{"messages": [...]}``; each message stays raw until validated."""

    messages: list[msgspec.Raw]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One message (or the whole body, `index` None) that could not be used."""

    reason: str
    detail: str
    field: str | None
    index: int | None
    original: bytes
    status: int = 422


@dataclass(frozen=True, slots=True)
class Parsed:
    """The outcome of one POST body."""

    messages: list[Message]
    rejections: list[Rejection]


_ENVELOPE = msgspec.json.Decoder(Envelope)
_MESSAGE = msgspec.json.Decoder(LandbotMessage)
_UNTYPED_INTEGRAL = msgspec.json.Decoder(float_hook=lambda text: _integral(float(text)))


def _integral(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def _decode_message(original: bytes) -> LandbotMessage:
    """Decode strictly; on a type error, once more reading `14397.0` as the integer it is.

    JSON has one number type (and JSON Schema's "integer" takes 14397.0); msgspec's strict
    `int` does not, so a message valid by the OpenAPI document would be rejected. The slow
    path runs only for messages the fast one refused.
    """
    try:
        return _MESSAGE.decode(original)
    except msgspec.ValidationError as exc:
        if "got `float`" not in str(exc):
            raise
        return msgspec.convert(_UNTYPED_INTEGRAL.decode(original), LandbotMessage)


def decode_envelope(body: bytes, *, max_messages: int) -> list[msgspec.Raw]:
    """The raw messages of a body.

    Raises:
        InvalidPayload: not JSON (400), not ``{"messages": [...]}`` (422), empty or too many
            messages (422/413).
    """
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(
            "invalid_utf8", f"body is not UTF-8: byte {exc.start} is invalid", status=400
        ) from exc
    try:
        envelope = _ENVELOPE.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(
            "invalid_envelope", f'expected {{"messages": [...]}}: {exc}', field="$.messages"
        ) from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidPayload(
            "malformed_json", f"body is not valid JSON: {str(exc)[:200]}", status=400
        ) from exc
    if not envelope.messages:
        raise InvalidPayload("no_messages", "`messages` is empty", field="$.messages")
    if len(envelope.messages) > max_messages:
        raise InvalidPayload(
            "too_many_messages",
            f"{len(envelope.messages)} messages in one request; the limit is {max_messages}",
            field="$.messages",
            status=413,
        )
    return envelope.messages


def parse_body(
    body: bytes,
    *,
    hook: Hook,
    received_at: float,
    request_id: str,
    max_messages: int,
    ids: Pseudonyms = NO_SALT,
) -> Parsed:
    """Validate and normalize every message of a body (`ids`: messagehooks/pii/ids.py).

    Raises:
        InvalidPayload: when the envelope itself is unusable (see `decode_envelope`).
    """
    raws = decode_envelope(body, max_messages=max_messages)
    messages: list[Message] = []
    rejections: list[Rejection] = []
    for index, raw in enumerate(raws):
        original = bytes(raw)
        try:
            messages.append(
                normalize(
                    original,
                    hook=hook,
                    received_at=received_at,
                    request_id=request_id,
                    ids=ids,
                )
            )
        except InvalidPayload as exc:
            rejections.append(Rejection(exc.reason, exc.detail, exc.field, index, original, exc.status))
    return Parsed(messages, rejections)


def normalize(
    original: bytes,
    *,
    hook: Hook,
    received_at: float,
    request_id: str,
    ids: Pseudonyms = NO_SALT,
) -> Message:
    """One Landbot message (its JSON bytes) -> a normalized `Message`.

    Its chat, sender and message ids are pseudonymized by `ids` (messagehooks/pii/ids.py), so
    every id derived later from them is too.

    Raises:
        InvalidPayload: a required field is missing or has the wrong type, or the message belongs
            to another channel than the hook's.
    """
    try:
        landbot = _decode_message(original)
    except msgspec.ValidationError as exc:
        raise InvalidPayload("invalid_message", str(exc), field=_field_of(exc)) from exc
    except (msgspec.DecodeError, RecursionError) as exc:
        raise InvalidPayload("malformed_json", f"message is not valid JSON: {str(exc)[:200]}") from exc
    landbot_chat = chat_id(landbot)
    if landbot_chat is None:
        raise InvalidPayload(
            "missing_chat", "no chat id: expected `_raw.chat` or `customer.id`", field="$._raw.chat"
        )
    chat = ids.chat(landbot_chat)
    channel = _channel_id(landbot)
    if hook.channel is not None and channel != hook.channel:
        raise InvalidPayload(
            "channel_mismatch",
            f"hook {hook.name!r} tracks channel {hook.channel}, the message is from channel {channel!r}",
            field="$.channel.id",
        )
    body = _text(landbot.data, "body")
    if body is None:  # decode the whole message again only when the fallback is needed
        body = _raw_field(original, "message")
    payload = _text(landbot.data, "payload")
    data_action = _text(landbot.data, "action")  # checked even when the top-level action wins
    action = landbot.action or data_action or (landbot.raw.action if landbot.raw else None)
    seq = landbot.raw.seq if landbot.raw else None
    sender = landbot.sender
    return Message(
        message_id=ids.message(message_id(landbot, chat=chat, body=body, payload=payload, original=original)),
        chat_id=chat,
        hook=hook.name,
        type=landbot.type,
        role=_role(landbot),
        timestamp=landbot.timestamp,
        seq=seq,
        sender_id=ids.sender(None if sender is None or sender.id is None else str(sender.id)),
        channel_id=channel,
        body=body,
        payload=payload,
        options=_options(landbot.data),
        action=action,
        country=landbot.customer.country if landbot.customer else None,
        received_at=received_at,
        request_id=request_id,
        raw=msgspec.Raw(original),
    )


def _role(message: LandbotMessage) -> Role:
    if message.sender is not None and message.sender.type:
        role = _ROLE_OF_SENDER.get(message.sender.type.lower())
        if role is not None:
            return role
    if message.raw is not None and message.raw.author_type:
        return _ROLE_OF_SENDER.get(message.raw.author_type.lower(), "unknown")
    return "sys" if message.type == "event" else "unknown"


def _channel_id(message: LandbotMessage) -> str | None:
    if message.channel is not None and message.channel.id is not None:
        return str(message.channel.id)
    return None


def _text(data: Mapping[str, Any], key: str, fallback: str | None = None) -> str | None:
    value = data.get(key)
    if value is None:
        return fallback
    if isinstance(value, str):
        return value
    raise InvalidPayload(
        "invalid_message",
        f"expected a string or null at `data.{key}`, got {type(value).__name__}",
        field=f"$.data.{key}",
    )


def _raw_field(original: bytes, key: str) -> str | None:
    """`_raw.message` as a fallback body (decoded only when `data.body` is absent)."""
    raw = msgspec.json.decode(original).get("_raw")
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None


def _options(data: Mapping[str, Any]) -> tuple[str, ...]:
    """Dialog options shown to the customer; tolerant of strings or objects with a label."""
    for key in _OPTION_KEYS:
        items = data.get(key)
        if isinstance(items, list):
            return tuple(text for item in items if (text := _option_text(item)) is not None)
    return ()


def _option_text(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in _OPTION_TEXT_KEYS:
            if isinstance(item.get(key), str):
                return str(item[key])
    return None


def _field_of(exc: msgspec.ValidationError) -> str | None:
    """The JSON path msgspec names: "... - at `$.path`", or "missing required field `x`"."""
    text = str(exc)
    path = text.rsplit("at `", 1)[1].rstrip("`") if " - at `" in text else "$"
    missing = "missing required field `"
    if missing in text:
        return f"{path}.{text.split(missing, 1)[1].split('`', 1)[0]}"
    return path if " - at `" in text else None
