"""Landbot-like traffic for stream tests: conversations with dialogs, take-overs, retries, disorder."""

import json
import random
import time
from typing import Any

from tests.factories import landbot_message


def conversation_traffic(
    chats: int, *, seed: int, start: float | None = None, spacing: float = 0.2
) -> list[dict[str, Any]]:
    """Landbot messages of `chats` chats, in event-time order per chat (each with a uuid)."""
    rng = random.Random(seed)
    start = time.time() if start is None else start
    messages: list[dict[str, Any]] = []
    for chat_index in range(chats):
        chat = 900_000 + chat_index
        ts = start + rng.uniform(0, 1)
        counter = 0

        def add(ts: float, chat: int = chat, **fields: Any) -> None:
            nonlocal counter
            counter += 1
            messages.append(landbot_message(chat=chat, ts=round(ts, 6), uuid=f"c{chat}-{counter}", **fields))

        add(ts, type="text", sender_type="bot", body="Hi! I am the shop bot.")
        ts += spacing
        add(ts, type="dialog", sender_type="bot", body="What do you need?", options=["Order", "Agent"])
        ts += spacing * rng.uniform(1, 3)
        add(ts, type="button", sender_type="customer", body="Order", payload="$0")
        ts += spacing
        add(ts, type="text", sender_type="bot", body="Your order number?")
        if rng.random() < 0.8:
            ts += spacing * rng.uniform(1, 4)
            add(ts, type="text", sender_type="customer", body=f"It is A-{rng.randint(1000, 9999)}")
            ts += spacing
            add(ts, type="image", sender_type="bot", body=None)
            add(ts + 0.01, type="text", sender_type="bot", body="Anything else?")
        if rng.random() < 0.4:
            ts += spacing
            add(ts, type="event", sender_type=None, body=None, action="assign")
            ts += spacing
            add(ts, type="text", sender_type="agent", body="Hello, this is Ana.")
            ts += spacing
            add(ts, type="text", sender_type="customer", body="Where is my parcel?")
            ts += spacing
            add(ts, type="text", sender_type="sys", body="Agent left")
            add(ts + 0.01, type="event", sender_type=None, body=None, action="unassign")
    return messages


def deliveries(
    messages: list[dict[str, Any]], *, seed: int, retries: float = 0.1, swaps: float = 0.2
) -> list[bytes]:
    """POST bodies as Landbot delivers them: one message each, some retried, neighbours swapped."""
    rng = random.Random(seed)
    order = list(messages)
    for i in range(len(order) - 1):
        # Swap neighbours of one chat that are close in event time (bursts out of order).
        same_chat = order[i]["_raw"]["chat"] == order[i + 1]["_raw"]["chat"]
        if (
            same_chat
            and abs(order[i]["timestamp"] - order[i + 1]["timestamp"]) < 0.5
            and rng.random() < swaps
        ):
            order[i], order[i + 1] = order[i + 1], order[i]
    bodies = []
    for message in order:
        body = json.dumps({"messages": [message]}).encode()
        bodies.append(body)
        if rng.random() < retries:
            bodies.append(body)
    return bodies
