"""The per-chat session builder: ordered messages in, turns, pairs and conversations out.

This is the one definition of the semantics, shared by batch (`features.batch`) and the stream
(`streams.sessions`): both feed it a chat's messages in `order_key()` order, so their outputs
are equal by construction. The state is a msgspec struct, updated in place.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from features.conversation import (
    ConversationState,
    count_message,
    count_pair,
    count_turn,
    open_conversation,
    summarize,
)
from features.pairs import DEFAULT_CONTEXT_TURNS as DEFAULT_CONTEXT_TURNS
from features.pairs import awaits_response, is_pair, make_pair
from features.structs import Conversation, Turn, TurnPair
from features.turns import extend_turn, forms_turn, seal_turn, start_turn
from messagehooks.schema import Message
from messagehooks.settings import default

DEFAULT_CONVERSATION_GAP: float = default("conversation_gap")
"""The declared default of MESSAGEHOOKS_CONVERSATION_GAP (messagehooks/settings.py)."""


class ChatSession(msgspec.Struct, kw_only=True):
    """A chat's sessionizing state: its latest attributes and its open conversation."""

    chat_id: str
    country: str | None = None
    channel_id: str | None = None
    conversation: ConversationState | None = None


@dataclass(slots=True)
class Emitted:
    """What the builder produced, in emission order (appended to by the builder)."""

    turns: list[Turn] = field(default_factory=list)
    pairs: list[TurnPair] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)


def add_message(
    session: ChatSession,
    message: Message,
    out: Emitted,
    *,
    conversation_gap: float = DEFAULT_CONVERSATION_GAP,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> None:
    """Feed the chat's next message (in `order_key()` order) to its session.

    A gap strictly longer than `conversation_gap` after the previous message closes the open
    conversation first. Whatever becomes final is appended to `out`.
    """
    conv = session.conversation
    if conv is not None and message.timestamp - conv.end_ts > conversation_gap:
        close_conversation(session, out, context_turns=context_turns)
        conv = None
    if message.country is not None:
        session.country = message.country
    if message.channel_id is not None:
        session.channel_id = message.channel_id
    if conv is None:
        conv = session.conversation = open_conversation(message)
    count_message(conv, message)
    if not forms_turn(message):
        return
    turn = conv.open_turn
    if turn is not None and turn.role == message.role:
        extend_turn(
            turn,
            message,
            country=session.country,
            channel_id=session.channel_id,
            agent_assigned=conv.agent_assigned,
        )
        return
    if turn is not None:
        _seal_open_turn(conv, out, context_turns=context_turns)
    conv.open_turn = start_turn(
        message,
        conv.turn_count,
        country=session.country,
        channel_id=session.channel_id,
        agent_assigned=conv.agent_assigned,
    )


def close_conversation(
    session: ChatSession, out: Emitted, *, context_turns: int = DEFAULT_CONTEXT_TURNS
) -> None:
    """Close the open conversation (if any): seal its turn, emit its unanswered pair and record."""
    conv = session.conversation
    if conv is None:
        return
    if conv.open_turn is not None:
        _seal_open_turn(conv, out, context_turns=context_turns)
    if conv.recent_turns and awaits_response(conv.recent_turns[-1].role):
        last = conv.recent_turns[-1]
        pair = make_pair(last, None, context=conv.recent_turns[:-1], pair_index=conv.pair_count)
        count_pair(conv, pair)
        out.pairs.append(pair)
    out.conversations.append(summarize(conv, country=session.country, channel_id=session.channel_id))
    session.conversation = None


def sessionize(
    messages: Iterable[Message],
    *,
    conversation_gap: float = DEFAULT_CONVERSATION_GAP,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> Emitted:
    """Turns, pairs and conversations of ONE chat's messages, already deduplicated and sorted.

    Every conversation is closed at the end (the caller has seen all messages).

    Raises:
        ValueError: the messages belong to more than one chat, or a setting is out of range.
    """
    if conversation_gap <= 0 or context_turns < 0:
        msg = f"need conversation_gap > 0 and context_turns >= 0, got {conversation_gap!r}, {context_turns!r}"
        raise ValueError(msg)
    out = Emitted()
    session: ChatSession | None = None
    for message in messages:
        if session is None:
            session = ChatSession(chat_id=message.chat_id)
        elif message.chat_id != session.chat_id:
            msg = f"sessionize() takes one chat, got {session.chat_id!r} and {message.chat_id!r}"
            raise ValueError(msg)
        add_message(session, message, out, conversation_gap=conversation_gap, context_turns=context_turns)
    if session is not None:
        close_conversation(session, out, context_turns=context_turns)
    return out


def _seal_open_turn(conv: ConversationState, out: Emitted, *, context_turns: int) -> None:
    """Seal the open turn; emit the pair it answers, if it answers the previous turn."""
    if conv.open_turn is None:
        return
    turn = seal_turn(conv.open_turn, conversation_id=conv.conversation_id, chat_id=conv.chat_id)
    conv.open_turn = None
    count_turn(conv, turn)
    out.turns.append(turn)
    recent = conv.recent_turns
    if recent and is_pair(recent[-1].role, turn.role):
        pair = make_pair(recent[-1], turn, context=recent[:-1], pair_index=conv.pair_count)
        count_pair(conv, pair)
        out.pairs.append(pair)
    recent.append(turn)
    # Keep the last turn plus the `context_turns` before it: the next pair's prompt and context.
    del recent[: max(0, len(recent) - context_turns - 1)]
