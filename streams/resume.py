"""Resume conversations left open when the worker's state was lost, from the `messages` table.

The chats table lives in a Kafka changelog; on the embedded broker (in memory) it dies with
the broker, so a new `up` would start every chat afresh and the conversations open at the stop
would never close (their unanswered prompts never reach `turn_pairs`). The `messages` Delta
table holds every accepted message durably, so at start-up the worker rebuilds, for each chat
whose last conversations have no row in `conversations` yet, their state by replaying
their messages through the same `step` the stream uses. Replaying is idempotent: a
message the state already holds is a duplicate or late and changes nothing, and the pairs and
conversations it re-emits carry the ids they had, which the dataset sink drops as repeats.
"""

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Any

import pandas as pd

from features.batch import messages_from_frame
from features.conversation import conversation_id
from messagehooks.schema import Message
from streams.sessions import ChatState, Output, SessionSettings, new_state, step

MESSAGE_COLUMNS = [
    "message_id",
    "chat_id",
    "type",
    "role",
    "timestamp",
    "seq",
    "channel_id",
    "body",
    "payload",
    "options",
    "action",
    "country",
    "late",
]
"""What a replay reads of the `messages` table (what sessions use, plus the `late` flag)."""

TableReader = Callable[[str, list[str]], pd.DataFrame | None]
"""Reads `columns` of a dataset table (`table`, `columns`), or None if it was never written."""


@dataclass(frozen=True, slots=True)
class OpenTail:
    """The messages of a chat's conversations not closed in the dataset yet (usually one).

    Attributes:
        chat_id: The chat.
        conversation_id: The id of the first open conversation (from its first message).
        country: The chat's latest non-null country before the conversation (carried over).
        channel_id: Likewise for the channel.
        messages: The conversation's messages, deduplicated and in `order_key()` order.
    """

    chat_id: str
    conversation_id: str
    country: str | None
    channel_id: str | None
    messages: tuple[Message, ...]


def open_tails(frame: pd.DataFrame, closed: Collection[str], *, conversation_gap: float) -> list[OpenTail]:
    """Each chat's conversations after its last one in `closed`, from rows of `messages`.

    The stream closes a chat's conversations in order, so those after the last closed one are
    the ones still open (more than one when the next conversation's first message was still
    buffered at the stop). Rows flagged `late` are left out: the stream never paired them. A
    conversation is a run of a chat's messages with no gap longer than `conversation_gap`.

    Args:
        frame: Rows of the `messages` table (`MESSAGE_COLUMNS`; `late` optional), any order.
        closed: Ids of conversations already in the `conversations` table.
        conversation_gap: The conversation gap in seconds.

    Returns:
        The open tails, in chat id order.
    """
    if frame.empty:
        return []
    if "late" in frame.columns:
        frame = frame[~frame["late"].fillna(False).astype(bool)]
    frame = (
        frame.assign(_seq=frame["seq"].fillna(-1))
        .sort_values(["chat_id", "timestamp", "_seq", "message_id"], kind="stable")
        .drop_duplicates(["chat_id", "message_id"], keep="first")
    )
    chat = frame["chat_id"]
    ts = frame["timestamp"]
    number = (chat.ne(chat.shift()) | (ts - ts.shift() > conversation_gap)).cumsum()
    firsts = frame.groupby(number).agg(chat_id=("chat_id", "first"), start=("timestamp", "first"))
    firsts["closed"] = [
        conversation_id(str(c), float(t)) in closed
        for c, t in zip(firsts["chat_id"], firsts["start"], strict=True)
    ]
    last_closed = firsts.index.to_series().where(firsts["closed"]).groupby(firsts["chat_id"]).max()
    after = number.gt(chat.map(last_closed).fillna(0))
    before = frame[~after].groupby("chat_id")[["country", "channel_id"]].last()
    countries = before["country"].to_dict()
    channels = before["channel_id"].to_dict()
    # One conversion for all tail rows, then grouped: per-chat pandas calls would cost ~1 ms each.
    rows = frame[after].drop(columns=["_seq", "late"], errors="ignore")
    tails: list[OpenTail] = []
    for chat_id, messages in groupby(messages_from_frame(rows), key=attrgetter("chat_id")):
        ordered = tuple(messages)
        tails.append(
            OpenTail(
                chat_id=chat_id,
                conversation_id=conversation_id(chat_id, ordered[0].timestamp),
                country=_text(countries.get(chat_id)),
                channel_id=_text(channels.get(chat_id)),
                messages=ordered,
            )
        )
    return tails


def replay(
    state: ChatState | None, tail: OpenTail, settings: SessionSettings
) -> tuple[ChatState, list[Output]]:
    """Feed `tail` through `step`, onto `state` (None: a chat this worker has no state for).

    A fresh state starts with the chat's carried-over country and channel, as the
    uninterrupted stream would have had them when the conversation began.
    """
    if state is None:
        state = new_state(tail.chat_id)
        state.session.country = tail.country
        state.session.channel_id = tail.channel_id
    outputs = []
    for message in tail.messages:
        state, out = step(state, message, settings)
        outputs.append(out)
    return state, outputs


def read_open_tails(
    read_table: TableReader, *, conversation_gap: float, chats: Iterable[str] | None = None
) -> list[OpenTail]:
    """`open_tails` of the dataset `read_table` reads (none when nothing was written yet).

    Args:
        read_table: Reads the dataset's tables (the caller's: streams do not import `dataset`).
        conversation_gap: The conversation gap in seconds.
        chats: Only these chat ids (None: all).
    """
    frame = read_table("messages", MESSAGE_COLUMNS)
    if frame is None:
        return []
    if chats is not None:
        frame = frame[frame["chat_id"].isin(set(chats))]
    conversations = read_table("conversations", ["conversation_id"])
    closed: set[str] = set() if conversations is None else set(conversations["conversation_id"])
    return open_tails(frame, closed, conversation_gap=conversation_gap)


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
