"""Output records of feature extraction: turns, turn pairs and conversations.

All records are frozen msgspec structs, so they encode to JSON (the `turn-pairs` and
`conversations` topics) and convert to pandas rows without a translation layer.

They are also untracked by the cyclic garbage collector (`gc=False`): a backfill holds millions
of them, and every full collection walked them all (untracking them made the backfill 1.57x
faster, docs/BENCHMARKS.md). That is safe because a frozen record with only immutable fields (text,
numbers, tuples of records) cannot be part of a reference cycle — a test keeps it so.
"""

from typing import Literal

import msgspec

from messagehooks.schema import SCHEMA_VERSION

FEATURE_VERSION = 1
"""Version of the feature definitions; bump it whenever a feature's meaning changes."""

TurnRole = Literal["customer", "bot", "agent"]
"""The roles that form turns (sys and unknown messages, and events, never do)."""


class ContextTurn(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A turn preceding a pair's prompt, as given to a model for context."""

    role: TurnRole
    text: str


class TranscriptEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One turn of a conversation transcript; `ts` is the turn's first message time."""

    role: TurnRole
    text: str
    ts: float


class Turn(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A maximal run of consecutive messages from one role inside a conversation.

    `country`, `channel_id` and `agent_assigned` are the chat's values as of the turn's last
    message (so a pair's features only use what was known when its prompt ended).
    """

    conversation_id: str
    chat_id: str
    turn_index: int
    role: TurnRole
    text: str
    types: tuple[str, ...]
    options: tuple[str, ...]
    payload: str | None
    start_ts: float
    end_ts: float
    message_ids: tuple[str, ...]
    country: str | None
    channel_id: str | None
    agent_assigned: bool
    schema_version: int = SCHEMA_VERSION


class TurnPair(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A prompt turn and the next turn answering it, with the per-pair features (docs/dataset.md).

    For an unanswered pair (`answered` False) every `response_*` field and `latency_s` is None.
    """

    pair_id: str
    chat_id: str
    conversation_id: str
    pair_index: int
    prompt_role: TurnRole
    prompt_text: str
    prompt_types: tuple[str, ...]
    prompt_options: tuple[str, ...]
    prompt_payload: str | None
    prompt_ts: float
    prompt_turn_index: int
    prompt_message_ids: tuple[str, ...]
    response_role: TurnRole | None
    response_text: str | None
    response_types: tuple[str, ...] | None
    response_payload: str | None
    response_ts: float | None
    response_message_ids: tuple[str, ...] | None
    latency_s: float | None
    answered: bool
    context: tuple[ContextTurn, ...]
    prompt_chars: int
    prompt_words: int
    response_chars: int | None
    response_words: int | None
    prompt_is_button: bool
    response_is_button: bool | None
    prompt_option_count: int
    hour_of_day: int
    weekday: int
    country: str | None
    channel_id: str | None
    agent_assigned: bool
    prompt_has_question: bool
    prompt_has_digits: bool
    prompt_has_email: bool
    prompt_has_url: bool
    response_has_question: bool | None
    response_has_digits: bool | None
    response_has_email: bool | None
    response_has_url: bool | None
    feature_version: int = FEATURE_VERSION
    schema_version: int = SCHEMA_VERSION


class Conversation(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A closed conversation: its counts, conversation-level features and transcript.

    Message counts by role cover non-event messages; events are counted in `event_messages`.
    """

    conversation_id: str
    chat_id: str
    start_ts: float
    end_ts: float
    duration_s: float
    message_count: int
    customer_messages: int
    bot_messages: int
    agent_messages: int
    sys_messages: int
    unknown_messages: int
    event_messages: int
    turn_count: int
    customer_turns: int
    bot_turns: int
    agent_turns: int
    pair_count: int
    answered_pair_count: int
    first_response_latency_s: float | None
    median_customer_latency_s: float | None
    escalated: bool
    time_to_assignment_s: float | None
    abandoned: bool
    transcript: tuple[TranscriptEntry, ...]
    country: str | None
    channel_id: str | None
    feature_version: int = FEATURE_VERSION
    schema_version: int = SCHEMA_VERSION
