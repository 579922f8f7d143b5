"""Message identity (DESIGN §3) and chat id: pure functions, stable across Landbot retries."""

import hashlib
import re

import orjson

from messagehooks.schema import Id, LandbotMessage

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")


def trace_id(sentry_trace: str | None) -> str | None:
    """The trace id of a ``sentry-trace`` header (``{trace}-{span}[-{sampled}]``), if well formed."""
    if not sentry_trace:
        return None
    trace = sentry_trace.strip().split("-", 1)[0]
    return trace.lower() if _TRACE_ID.match(trace) else None


def chat_id(message: LandbotMessage) -> str | None:
    """`_raw.chat`, else `customer.id` (they differ in real traffic), as a string.

    A null or empty one does not count: "" would merge every such customer into one chat.
    """
    candidates = (
        message.raw.chat if message.raw is not None else None,
        message.customer.id if message.customer is not None else None,
    )
    return next((_id_text(value) for value in candidates if value is not None and value != ""), None)


def message_id(
    message: LandbotMessage,
    *,
    chat: str,
    body: str | None,
    payload: str | None,
    sentry_trace: str | None,
    single: bool,
) -> str:
    """The message's id: `_raw.uuid`; else the sentry trace of a one-message POST; else a hash.

    The hash covers (chat, timestamp, sender type, sender id, type, body, payload), so a retried
    POST of the same message gets the same id even without a uuid or a trace header.
    """
    if message.raw is not None and message.raw.uuid:
        return message.raw.uuid
    trace = trace_id(sentry_trace) if single else None
    if trace is not None:
        return f"trace-{trace}"
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
        ]
    )
    return "hash-" + hashlib.sha256(key).hexdigest()[:32]


def _id_text(value: Id) -> str:
    return str(value)
