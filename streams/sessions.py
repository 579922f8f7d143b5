"""Per-chat incremental sessionizing for the stream: dedup, reordering, lateness, emission.

`step` takes one chat's state (a `ChatState`, stored in a Faust table keyed by chat id) and one
message, and returns the new state plus what became final. Messages wait in a small buffer
until they are `allowed_lateness` seconds (event time) behind the newest one seen; they are then
sealed, in `order_key()` order, into the same session builder the batch backfill uses
(`features.session`). So for any arrival order within the lateness bound, the stream's pairs and
conversations equal `features.batch.build_dataset`'s (see docs/streams.md).

`step`, `flush` and `close_idle` take ownership of the state they are given: they update it in
place and return it (copying a chat's state on every message would cost more than the work).
"""

import bisect
from dataclasses import dataclass

import msgspec

from features.lateness import is_late
from features.session import (
    DEFAULT_CONTEXT_TURNS,
    DEFAULT_CONVERSATION_GAP,
    ChatSession,
    Emitted,
    add_message,
    close_conversation,
)
from features.structs import Conversation, Turn, TurnPair
from messagehooks.schema import Message
from messagehooks.settings import default

OrderKey = tuple[float, int, str]

_NO_RAW = msgspec.Raw(b"null")
DEFAULT_ALLOWED_LATENESS: float = default("allowed_lateness")
"""The declared default of MESSAGEHOOKS_ALLOWED_LATENESS (messagehooks/settings.py)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SessionSettings:
    """Knobs of the session state machine (docs/streams.md).

    Attributes:
        conversation_gap: Seconds of event time; a strictly longer gap splits conversations,
            and a chat idle (wall clock) that long is closed by the idle timer (streams/idle.py).
        allowed_lateness: Seconds of event time a message may lag the newest one seen and
            still be placed in order.
        context_turns: Turns before a prompt kept in a pair's `context`.
        dedup_window: Recent message ids remembered per chat to drop redeliveries.
    """

    conversation_gap: float = DEFAULT_CONVERSATION_GAP
    allowed_lateness: float = DEFAULT_ALLOWED_LATENESS
    context_turns: int = DEFAULT_CONTEXT_TURNS
    dedup_window: int = 1000

    def __post_init__(self) -> None:
        if self.conversation_gap <= 0:
            msg = f"conversation_gap must be > 0 seconds, got {self.conversation_gap!r}"
            raise ValueError(msg)
        if self.allowed_lateness < 0:
            msg = f"allowed_lateness must be >= 0 seconds, got {self.allowed_lateness!r}"
            raise ValueError(msg)
        if self.context_turns < 0:
            msg = f"context_turns must be >= 0, got {self.context_turns!r}"
            raise ValueError(msg)
        if self.dedup_window < 1:
            msg = f"dedup_window must be >= 1, got {self.dedup_window!r}"
            raise ValueError(msg)


class ChatState(msgspec.Struct, kw_only=True):
    """Everything the stream remembers about one chat; JSON round-trippable with msgspec.

    Attributes:
        session: The session builder's state (open conversation, open turn, counters).
        buffer: Accepted messages not yet sealed, sorted by `order_key()` (without `raw`).
        recent_ids: The last `dedup_window` accepted message ids, oldest first.
        max_ts: The newest event time accepted so far.
        sealed_key: `order_key()` of the last sealed message; nothing may order before it.
    """

    session: ChatSession
    buffer: list[Message] = msgspec.field(default_factory=list)
    recent_ids: list[str] = msgspec.field(default_factory=list)
    max_ts: float | None = None
    sealed_key: OrderKey | None = None

    @property
    def chat_id(self) -> str:
        """The chat this state belongs to."""
        return self.session.chat_id


@dataclass(frozen=True, kw_only=True, slots=True)
class Output:
    """What one call produced: final records in emission order, and the message's fate.

    Attributes:
        turns: Turns sealed by this call.
        pairs: Turn pairs that became final (answered, or unanswered at a close).
        conversations: Conversations closed by this call.
        duplicate: The message's id was already accepted: nothing changed.
        late: The message ordered before what was already sealed, or lagged the newest event
            time by more than the allowed lateness: it was not used (nothing changed).
    """

    turns: tuple[Turn, ...] = ()
    pairs: tuple[TurnPair, ...] = ()
    conversations: tuple[Conversation, ...] = ()
    duplicate: bool = False
    late: bool = False


def new_state(chat_id: str) -> ChatState:
    """The state of a chat never seen before."""
    return ChatState(session=ChatSession(chat_id=chat_id))


def step(state: ChatState | None, message: Message, settings: SessionSettings) -> tuple[ChatState, Output]:
    """Process one message of a chat.

    Args:
        state: The chat's state, or None for a new chat.
        message: The next message to arrive for this chat (any order).
        settings: The session settings.

    Returns:
        The updated state and the output. A duplicate or late message leaves the state
        unchanged and is flagged in the output.

    Raises:
        ValueError: `message` belongs to another chat than `state`.
    """
    if state is None:
        state = new_state(message.chat_id)
    elif message.chat_id != state.chat_id:
        msg = f"message {message.message_id!r} is for chat {message.chat_id!r}, not {state.chat_id!r}"
        raise ValueError(msg)
    if _is_duplicate(state, message.message_id):
        return state, Output(duplicate=True)
    if _is_late(state, message, settings):
        return state, Output(late=True)
    bisect.insort(state.buffer, _slim(message), key=_order_key)
    state.recent_ids.append(message.message_id)
    del state.recent_ids[: max(0, len(state.recent_ids) - settings.dedup_window)]
    ts = float(message.timestamp)
    if state.max_ts is None or ts > state.max_ts:
        state.max_ts = ts
    out = Emitted()
    watermark = state.max_ts - settings.allowed_lateness
    sealed = 0
    for buffered in state.buffer:
        if buffered.timestamp >= watermark:
            break
        _seal(state, buffered, settings, out)
        sealed += 1
    del state.buffer[:sealed]
    return state, _output(out)


def flush(state: ChatState, settings: SessionSettings) -> tuple[ChatState, Output]:
    """Seal every buffered message and close the open conversation (as batch does at the end).

    Messages arriving afterwards that order before the last sealed one are late.
    """
    out = Emitted()
    for buffered in state.buffer:
        _seal(state, buffered, settings, out)
    state.buffer.clear()
    close_conversation(state.session, out, context_turns=settings.context_turns)
    return state, _output(out)


def close_idle(state: ChatState, now: float, settings: SessionSettings) -> tuple[ChatState, Output]:
    """`flush` the chat if its newest message is more than the conversation gap before `now`.

    The idle close by event time: `now` is epoch seconds, like Landbot's timestamps. Where
    event time is wall time (the simulated stream of tests/features/simulated.py) it is what
    the worker's idle timer does; the worker itself measures idleness on its own clock and only
    on caught-up partitions (streams/idle.py). A chat with nothing open is left as it is.
    """
    if not is_open(state) or state.max_ts is None:
        return state, Output()
    if now - state.max_ts <= settings.conversation_gap:
        return state, Output()
    return flush(state, settings)


def is_open(state: ChatState) -> bool:
    """Whether the chat has buffered messages or an open conversation (else only dedup memory)."""
    return bool(state.buffer) or state.session.conversation is not None


def _is_duplicate(state: ChatState, message_id: str) -> bool:
    # The buffer check covers a dedup window smaller than the buffer.
    return message_id in state.recent_ids or any(m.message_id == message_id for m in state.buffer)


def _is_late(state: ChatState, message: Message, settings: SessionSettings) -> bool:
    if is_late(message.timestamp, state.max_ts, settings.allowed_lateness):
        return True
    return state.sealed_key is not None and message.order_key() <= state.sealed_key


def _seal(state: ChatState, message: Message, settings: SessionSettings, out: Emitted) -> None:
    add_message(
        state.session,
        message,
        out,
        conversation_gap=settings.conversation_gap,
        context_turns=settings.context_turns,
    )
    state.sealed_key = _order_key(message)


def _slim(message: Message) -> Message:
    """The message as the state keeps it, without what sessions never read.

    The raw JSON and the request and delivery metadata are most of a buffered message's memory.
    """
    return msgspec.structs.replace(
        message, raw=_NO_RAW, request_id="", hook="", sender_id=None, received_at=0.0
    )


def _order_key(message: Message) -> OrderKey:
    return message.order_key()


def _output(out: Emitted) -> Output:
    return Output(turns=tuple(out.turns), pairs=tuple(out.pairs), conversations=tuple(out.conversations))
