"""Conversation accumulator: counters and conversation-level features, then its record.

A conversation is a maximal run of a chat's messages (events and sys included) with no gap
longer than the conversation gap; its id is ``f"{chat_id}:{first_ts!r}"``.
"""

import msgspec

from features.structs import Conversation, TranscriptEntry, Turn, TurnPair
from features.timing import median
from features.turns import OpenTurn
from messagehooks.schema import Message

ASSIGN = "assign"
UNASSIGN = "unassign"


class ConversationState(msgspec.Struct, kw_only=True):
    """The open conversation of a chat (part of the serializable session state).

    Only what the conversation record needs is kept: counters, the transcript, the open turn
    and the last few sealed turns (the context of the next pair), never the messages.
    """

    conversation_id: str
    chat_id: str
    start_ts: float
    end_ts: float
    customer_messages: int = 0
    bot_messages: int = 0
    agent_messages: int = 0
    sys_messages: int = 0
    unknown_messages: int = 0
    event_messages: int = 0
    customer_turns: int = 0
    bot_turns: int = 0
    agent_turns: int = 0
    pair_count: int = 0
    answered_pair_count: int = 0
    first_response_latency_s: float | None = None
    customer_latencies: list[float] = msgspec.field(default_factory=list)
    agent_assigned: bool = False
    first_assign_ts: float | None = None
    transcript: list[TranscriptEntry] = msgspec.field(default_factory=list)
    open_turn: OpenTurn | None = None
    recent_turns: list[Turn] = msgspec.field(default_factory=list)

    @property
    def turn_count(self) -> int:
        """Number of turns so far, the open one included."""
        return len(self.transcript) + (self.open_turn is not None)


def conversation_id(chat_id: str, first_ts: float) -> str:
    """Deterministic id of the conversation whose first message is at `first_ts`."""
    return f"{chat_id}:{float(first_ts)!r}"


def open_conversation(message: Message) -> ConversationState:
    """Start the conversation whose first message is `message` (not yet counted)."""
    ts = float(message.timestamp)
    return ConversationState(
        conversation_id=conversation_id(message.chat_id, ts),
        chat_id=message.chat_id,
        start_ts=ts,
        end_ts=ts,
    )


def count_message(state: ConversationState, message: Message) -> None:
    """Count `message` (the next one in order) and apply an event's effect on assignment."""
    state.end_ts = float(message.timestamp)
    if message.is_event:
        state.event_messages += 1
        if message.action == ASSIGN:
            state.agent_assigned = True
            if state.first_assign_ts is None:
                state.first_assign_ts = float(message.timestamp)
        elif message.action == UNASSIGN:
            state.agent_assigned = False
        return
    match message.role:
        case "customer":
            state.customer_messages += 1
        case "bot":
            state.bot_messages += 1
        case "agent":
            state.agent_messages += 1
        case "sys":
            state.sys_messages += 1
        case _:
            state.unknown_messages += 1


def count_turn(state: ConversationState, turn: Turn) -> None:
    """Count a sealed turn and add it to the transcript."""
    match turn.role:
        case "customer":
            state.customer_turns += 1
        case "bot":
            state.bot_turns += 1
        case "agent":
            state.agent_turns += 1
    state.transcript.append(TranscriptEntry(role=turn.role, text=turn.text, ts=turn.start_ts))


def count_pair(state: ConversationState, pair: TurnPair) -> None:
    """Count an emitted pair and keep the latencies the conversation features need."""
    state.pair_count += 1
    if pair.latency_s is None:
        return
    state.answered_pair_count += 1
    if pair.prompt_role == "customer" and state.first_response_latency_s is None:
        state.first_response_latency_s = pair.latency_s
    if pair.response_role == "customer":
        state.customer_latencies.append(pair.latency_s)


def summarize(state: ConversationState, *, country: str | None, channel_id: str | None) -> Conversation:
    """The record of a closed conversation (its open turn must already be sealed).

    Args:
        state: The conversation, with every turn and pair counted.
        country: The chat's latest known country as of the conversation's last message.
        channel_id: The chat's latest known channel id as of its last message.
    """
    message_count = (
        state.customer_messages
        + state.bot_messages
        + state.agent_messages
        + state.sys_messages
        + state.unknown_messages
        + state.event_messages
    )
    last_role = state.transcript[-1].role if state.transcript else None
    return Conversation(
        conversation_id=state.conversation_id,
        chat_id=state.chat_id,
        start_ts=state.start_ts,
        end_ts=state.end_ts,
        duration_s=state.end_ts - state.start_ts,
        message_count=message_count,
        customer_messages=state.customer_messages,
        bot_messages=state.bot_messages,
        agent_messages=state.agent_messages,
        sys_messages=state.sys_messages,
        unknown_messages=state.unknown_messages,
        event_messages=state.event_messages,
        turn_count=len(state.transcript),
        customer_turns=state.customer_turns,
        bot_turns=state.bot_turns,
        agent_turns=state.agent_turns,
        pair_count=state.pair_count,
        answered_pair_count=state.answered_pair_count,
        first_response_latency_s=state.first_response_latency_s,
        median_customer_latency_s=median(state.customer_latencies),
        escalated=state.first_assign_ts is not None or state.agent_messages > 0,
        time_to_assignment_s=(
            None if state.first_assign_ts is None else state.first_assign_ts - state.start_ts
        ),
        abandoned=last_role is not None and last_role != "customer",
        transcript=tuple(state.transcript),
        country=country,
        channel_id=channel_id,
    )
