"""Turns: maximal runs of consecutive customer, bot or agent messages in a conversation.

Events and sys/unknown messages are transparent: they neither start, extend nor end a turn.
A turn is built incrementally (`start_turn`, `extend_turn`) and frozen by `seal_turn`.
"""

from typing import TypeGuard, get_args

import msgspec

from features.structs import Turn, TurnRole
from messagehooks.schema import Message, Role

_TURN_ROLES: frozenset[str] = frozenset(get_args(TurnRole))


class OpenTurn(msgspec.Struct, kw_only=True):
    """A turn still accepting messages (part of the serializable session state)."""

    role: TurnRole
    turn_index: int
    bodies: list[str]
    types: list[str]
    options: list[str]
    payload: str | None
    start_ts: float
    end_ts: float
    message_ids: list[str]
    country: str | None
    channel_id: str | None
    agent_assigned: bool


def is_turn_role(role: Role | str) -> TypeGuard[TurnRole]:
    """Whether `role` is one of the roles that form turns (customer, bot, agent)."""
    return role in _TURN_ROLES


def forms_turn(message: Message) -> bool:
    """Whether `message` belongs to a turn (not an event, and a customer/bot/agent sender)."""
    return not message.is_event and is_turn_role(message.role)


def start_turn(
    message: Message,
    turn_index: int,
    *,
    country: str | None,
    channel_id: str | None,
    agent_assigned: bool,
) -> OpenTurn:
    """Open a turn with its first message.

    Args:
        message: A message for which `forms_turn` is true.
        turn_index: Index of the turn within its conversation (0, 1, ...).
        country: The chat's latest known country, including this message.
        channel_id: The chat's latest known channel id, including this message.
        agent_assigned: Whether an agent is assigned to the conversation at this message.

    Raises:
        ValueError: `message` does not form turns.
    """
    role = message.role
    if message.is_event or not is_turn_role(role):
        msg = f"message {message.message_id!r} ({message.type}/{role}) cannot start a turn"
        raise ValueError(msg)
    ts = float(message.timestamp)
    turn = OpenTurn(
        role=role,
        turn_index=turn_index,
        bodies=[],
        types=[],
        options=[],
        payload=None,
        start_ts=ts,
        end_ts=ts,
        message_ids=[],
        country=country,
        channel_id=channel_id,
        agent_assigned=agent_assigned,
    )
    extend_turn(turn, message, country=country, channel_id=channel_id, agent_assigned=agent_assigned)
    return turn


def extend_turn(
    turn: OpenTurn,
    message: Message,
    *,
    country: str | None,
    channel_id: str | None,
    agent_assigned: bool,
) -> None:
    """Append `message` (same role, later in order) to `turn` in place.

    The chat attributes are those known at `message`; the turn keeps the latest ones.
    """
    if message.body:
        turn.bodies.append(message.body)
    turn.types.append(message.type)
    turn.options.extend(message.options)
    if message.payload is not None:
        turn.payload = message.payload
    turn.end_ts = float(message.timestamp)
    turn.message_ids.append(message.message_id)
    turn.country = country
    turn.channel_id = channel_id
    turn.agent_assigned = agent_assigned


def seal_turn(turn: OpenTurn, *, conversation_id: str, chat_id: str) -> Turn:
    """The immutable record of a finished turn."""
    return Turn(
        conversation_id=conversation_id,
        chat_id=chat_id,
        turn_index=turn.turn_index,
        role=turn.role,
        text="\n".join(turn.bodies),
        types=tuple(turn.types),
        options=tuple(turn.options),
        payload=turn.payload,
        start_ts=turn.start_ts,
        end_ts=turn.end_ts,
        message_ids=tuple(turn.message_ids),
        country=turn.country,
        channel_id=turn.channel_id,
        agent_assigned=turn.agent_assigned,
    )
