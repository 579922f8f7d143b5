"""A conversation as chat models learn from it: role-tagged messages, one per turn.

The messages are the conversation's turns as the features built them (`features.turns`:
consecutive messages of a role merged, their texts joined by newlines, a button click as its
label, a media block as its body or URL), so an export says what the tables say. The customer
is the ``user``; the bot and the agent are the ``assistant``, the agent's turns marked
``agent: true`` (a bot turn and an agent turn that follow each other stay two messages).
docs/schemas/chat-jsonl.v1.json is generated from `ChatLine`.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from features.splits import Split
from features.structs import TurnRole

ChatRole = Literal["user", "assistant"]

CHAT_ROLES: Mapping[TurnRole, ChatRole] = {"customer": "user", "bot": "assistant", "agent": "assistant"}
"""The chat-model role of each turn role."""


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One turn: who said it, as a chat model's role, and what (PII masked as in the tables)."""

    role: ChatRole
    content: str
    agent: bool
    """True for a human agent's turn (role assistant), false for the bot's and the customer's."""


class ChatOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How the conversation ended (the `conversations` table's labels)."""

    escalated: bool
    abandoned: bool


class ChatLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a chat-jsonl export: a closed conversation of the `conversations` table."""

    conversation_id: str
    chat_id: str
    split: Split
    """The chat's split (features/splits.py): every conversation of a chat is in the same one."""
    outcome: ChatOutcome
    messages: tuple[ChatMessage, ...]
    start_ts: float
    feature_version: int


def chat_messages(transcript: Iterable[Mapping[str, Any]]) -> tuple[ChatMessage, ...]:
    """A transcript's turns (``{"role", "text", ...}``, as stored) as chat messages."""
    return tuple(
        ChatMessage(role=CHAT_ROLES[turn["role"]], content=turn["text"], agent=turn["role"] == "agent")
        for turn in transcript
    )


def chat_line(row: Mapping[str, Any], split: Split) -> ChatLine:
    """A `conversations` row (a dict of its columns) as a chat-jsonl line."""
    return ChatLine(
        conversation_id=row["conversation_id"],
        chat_id=row["chat_id"],
        split=split,
        outcome=ChatOutcome(escalated=bool(row["escalated"]), abandoned=bool(row["abandoned"])),
        messages=chat_messages(row["transcript"] or ()),
        start_ts=row["start_ts"],
        feature_version=row["feature_version"],
    )
