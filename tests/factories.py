"""Builders of test data: normalized `Message`s and raw Landbot MessageHook payloads."""

import itertools
from collections.abc import Sequence
from typing import Any, Literal

from messagehooks.schema import Message, Role

BASE_TS = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, a Tuesday
CHANNEL = 761536
CUSTOMER = 65462634

_ids = itertools.count(1)

# Landbot's `_raw.author_type` spells the customer "user".
_AUTHOR_TYPE = {"customer": "user", "bot": "bot", "agent": "agent", "sys": "sys"}


def message(
    *,
    chat: str | int = "42",
    type: str = "text",
    role: Role = "customer",
    ts: float = BASE_TS,
    body: str | None = None,
    payload: str | None = None,
    options: Sequence[str] = (),
    action: str | None = None,
    seq: int | None = None,
    message_id: str | None = None,
    country: str | None = None,
    channel_id: str | None = None,
    sender_id: str | None = None,
    hook: str = "test",
) -> Message:
    """A normalized message; `message_id` defaults to a fresh unique id ("m1", "m2", ...)."""
    return Message(
        message_id=message_id if message_id is not None else f"m{next(_ids)}",
        chat_id=str(chat),
        hook=hook,
        type=type,
        role=role,
        timestamp=float(ts),
        seq=seq,
        sender_id=sender_id,
        channel_id=channel_id,
        body=body,
        payload=payload,
        options=tuple(options),
        action=action,
        country=country,
    )


def second_of_messages(n: int, ts: float, count: int = 6) -> list[Message]:
    """`count` messages of chat `c{n % 40}` within a second from `ts`, ids `m{n}.0`, `m{n}.1`, ...:
    what one commit of the sink holds in a quiet pipeline."""
    return [
        message(chat=f"c{n % 40}", ts=ts + j * 0.1, body=f"message {n}.{j}", message_id=f"m{n}.{j}")
        for j in range(count)
    ]


def event(*, action: str, ts: float = BASE_TS, chat: str | int = "42", **kwargs: Any) -> Message:
    """An `event` message (assign/unassign), sent by the platform."""
    kwargs.setdefault("role", "sys")
    return message(chat=chat, type="event", ts=ts, action=action, **kwargs)


def landbot_message(
    *,
    chat: int | str | None = 65363911,
    type: str = "text",
    sender_type: str | None = "customer",
    body: str | None = "hi!",
    ts: float | int = 1606145527.9043446,
    uuid: str | None = None,
    payload: str | None = None,
    action: str | None = None,
    action_in: Literal["top", "data", "raw"] = "top",
    seq: int | None = None,
    options: Sequence[str] | None = None,
    sender_id: int | str = CUSTOMER,
    customer_id: int | str = CUSTOMER,
    country: str | None = "spain",
    channel: int | str = CHANNEL,
    **extra: Any,
) -> dict[str, Any]:
    """One element of a MessageHook body's `messages`, in Landbot's shape (see tests/fixtures/landbot).

    Modelled on tests/fixtures/landbot/body_button_customer_docs.json. `chat=None` leaves out
    `_raw.chat` (ingest then falls back to `customer.id`); `action` goes at the top level, in
    `data` or in `_raw` as `action_in` says; dialog `options` go to `data.buttons`; `extra`
    keys are added at the message's top level (unknown fields must be tolerated).
    """
    raw: dict[str, Any] = {
        "extra": {},
        "type": type,
        "channel": channel,
        "timestamp": ts,
        "read": True,
        "message": body,
    }
    if chat is not None:
        raw["chat"] = chat
    if uuid is not None:
        raw["uuid"] = uuid
    if seq is not None:
        raw["seq"] = seq
    if sender_type is not None:
        raw["author_type"] = _AUTHOR_TYPE.get(sender_type, sender_type)
    data: dict[str, Any] = {"body": body}
    if payload is not None:
        raw["payload"] = payload
        data["payload"] = payload
    if options is not None:
        data["buttons"] = list(options)
    result: dict[str, Any] = {
        "_raw": raw,
        "type": type,
        "data": data,
        "timestamp": ts,
        "sender": (
            None
            if sender_type is None
            else {"id": sender_id, "name": f"{sender_type} #{sender_id}", "type": sender_type}
        ),
        "customer": {
            "country": country,
            "url": f"https://chats.landbot.io/v3/H-{channel}-PPDHF49M02RV6HV4/index.html",
            "id": customer_id,
        },
        "channel": {"id": channel, "name": "messagehooks docs example", "type": "landbot"},
    }
    if result["sender"] is None:
        del result["sender"]
    if action is not None:
        {"top": result, "data": data, "raw": raw}[action_in]["action"] = action
    result.update(extra)
    return result


def landbot_body(*messages: dict[str, Any]) -> dict[str, Any]:
    """A whole MessageHook POST body: ``{"messages": [...]}``."""
    return {"messages": list(messages)}


def example_chat(chat: str = "42", base: float = BASE_TS) -> list[Message]:
    """The worked example of docs/streams.md: a bot dialog, a button, an agent takeover.

    Message ids are "e1".."e11" (prefixed by the chat id for another chat than "42").
    Turns: bot [0, 1], customer [5], bot [6], customer [20, 21], agent [30, 40] (the sys
    message at 31 and the events at 22 and 50 are transparent).
    """
    attrs: dict[str, Any] = {"chat": chat, "country": "spain", "channel_id": "761536"}
    prefix = "" if chat == "42" else f"{chat}-"  # message ids are unique across chats
    return [
        message(role="bot", ts=base, body="Hi! I'm Botty.", message_id=f"{prefix}e1", **attrs),
        message(
            role="bot",
            type="dialog",
            ts=base + 1,
            body="What do you need?",
            options=("Pricing", "Support"),
            message_id=f"{prefix}e2",
            **attrs,
        ),
        message(type="button", ts=base + 5, body="Support", payload="$1", message_id=f"{prefix}e3", **attrs),
        message(
            role="bot", ts=base + 6, body="Describe your problem, please.", message_id=f"{prefix}e4", **attrs
        ),
        message(ts=base + 20, body="My order 1234 never arrived", message_id=f"{prefix}e5", **attrs),
        message(ts=base + 21, body="can you help?", message_id=f"{prefix}e6", **attrs),
        event(action="assign", ts=base + 22, message_id=f"{prefix}e7", **attrs),
        message(
            role="agent", ts=base + 30, body="Hi, I'm Ana. Let me check.", message_id=f"{prefix}e8", **attrs
        ),
        message(role="sys", ts=base + 31, body="Ana joined the chat", message_id=f"{prefix}e9", **attrs),
        message(
            role="agent",
            ts=base + 40,
            body="It ships tomorrow: track it at https://example.com/t/1234",
            message_id=f"{prefix}e10",
            **attrs,
        ),
        event(action="unassign", ts=base + 50, message_id=f"{prefix}e11", **attrs),
    ]
