"""Batch backfill: the whole dataset from all messages at once (the stream's oracle).

`build_dataset` deduplicates, sorts and feeds every chat through the same session builder the
stream uses (`features.session`), closing every conversation at the end, so stream and batch
produce the same pairs and conversations (docs/streams.md).
"""

import math
from collections.abc import Iterable, Sequence
from itertools import groupby
from operator import attrgetter
from typing import Any

import msgspec
import pandas as pd

from features.session import DEFAULT_CONTEXT_TURNS, DEFAULT_CONVERSATION_GAP, sessionize
from features.structs import Conversation, TurnPair
from messagehooks.schema import Message

_REQUIRED_COLUMNS = ("message_id", "chat_id", "type", "role", "timestamp")
# `raw` is not needed by any feature; leaving it out keeps the frame path light.
_MESSAGE_COLUMNS = tuple(name for name in Message.__struct_fields__ if name != "raw")
_NESTED = frozenset({"context", "transcript"})  # tuples of structs -> tuples of dicts
_DEFAULTS: dict[str, Any] = {
    info.name: info.default
    for info in msgspec.structs.fields(Message)
    if info.default is not msgspec.NODEFAULT
}


def build_dataset(
    messages: Iterable[Message] | pd.DataFrame,
    *,
    conversation_gap: float = DEFAULT_CONVERSATION_GAP,
    context_turns: int = DEFAULT_CONTEXT_TURNS,
) -> tuple[list[TurnPair], list[Conversation]]:
    """Turn pairs and conversations of all `messages`, every conversation closed.

    Args:
        messages: Normalized messages, or a DataFrame with `Message` field names as columns
            (see `messages_from_frame`). Any order, duplicates allowed.
        conversation_gap: A gap strictly longer than this (seconds) splits conversations.
        context_turns: How many turns before a prompt go into a pair's `context`.

    Returns:
        ``(pairs, conversations)``, grouped by chat (chats in sorted order), each chat's records
        in emission order. Deterministic for a given set of messages.
    """
    if isinstance(messages, pd.DataFrame):
        messages = messages_from_frame(messages)
    pairs: list[TurnPair] = []
    conversations: list[Conversation] = []
    for _, chat_messages in groupby(deduplicate(messages), key=attrgetter("chat_id")):
        out = sessionize(chat_messages, conversation_gap=conversation_gap, context_turns=context_turns)
        pairs.extend(out.pairs)
        conversations.extend(out.conversations)
    return pairs, conversations


def deduplicate(messages: Iterable[Message]) -> list[Message]:
    """Each chat's messages with a unique `message_id` (the first by `order_key()`), sorted.

    Ids are unique per chat, as in the stream (whose dedup memory is per chat).

    Returns:
        The unique messages sorted by chat id, then by `order_key()`.
    """
    ordered = sorted(messages, key=_chat_order_key)
    unique: list[Message] = []
    seen: set[str] = set()
    chat: str | None = None
    for message in ordered:
        if message.chat_id != chat:
            chat = message.chat_id
            seen.clear()
        if message.message_id not in seen:
            seen.add(message.message_id)
            unique.append(message)
    return unique


def _chat_order_key(message: Message) -> tuple[str, float, int, str]:
    seq = message.seq
    return (message.chat_id, message.timestamp, -1 if seq is None else seq, message.message_id)


def messages_from_frame(frame: pd.DataFrame) -> list[Message]:
    """Messages from a DataFrame whose columns are `Message` field names.

    Extra columns and `raw` are ignored; missing optional columns and NaN/None cells take the
    field's default (a missing `hook` becomes ""); `options` may hold lists, arrays or tuples.

    Raises:
        ValueError: a required column (message_id, chat_id, type, role, timestamp) is missing.
    """
    missing = [name for name in _REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        msg = f"messages frame is missing column(s) {missing}; it has {list(frame.columns)}"
        raise ValueError(msg)
    names = [name for name in _MESSAGE_COLUMNS if name in frame.columns]
    columns = [_column_values(frame[name], name) for name in names]
    if "hook" not in names:
        names.append("hook")
        columns.append([""] * len(frame))
    return [Message(**dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]


def pairs_frame(pairs: Iterable[TurnPair]) -> pd.DataFrame:
    """A DataFrame of turn pairs, one column per `TurnPair` field.

    Values are plain Python (tuples stay tuples, `context` becomes a tuple of ``{"role",
    "text"}`` dicts), which pyarrow turns into list and struct columns for Parquet/Delta.
    """
    return _frame(list(pairs), TurnPair.__struct_fields__)


def conversations_frame(conversations: Iterable[Conversation]) -> pd.DataFrame:
    """A DataFrame of conversations, one column per `Conversation` field.

    `transcript` becomes a tuple of ``{"role", "text", "ts"}`` dicts.
    """
    return _frame(list(conversations), Conversation.__struct_fields__)


def _frame(records: Sequence[msgspec.Struct], columns: Sequence[str]) -> pd.DataFrame:
    # Column-wise: one tuple per record, transposed; only nested structs go through to_builtins.
    values = list(zip(*map(msgspec.structs.astuple, records), strict=True)) or [()] * len(columns)
    data = {
        name: msgspec.to_builtins(column) if name in _NESTED else list(column)
        for name, column in zip(columns, values, strict=True)
    }
    return pd.DataFrame(data, columns=list(columns))


def _column_values(series: "pd.Series[Any]", name: str) -> list[Any]:
    values: list[Any] = series.tolist()
    if name == "options":
        return [() if _is_missing(v) else tuple(v) for v in values]
    if name == "timestamp":
        return [float(v) for v in values]
    if name in ("message_id", "chat_id"):
        return [str(v) for v in values]
    if name == "seq":
        return [None if _is_missing(v) else int(v) for v in values]
    default = _DEFAULTS.get(name)
    return [default if _is_missing(v) else v for v in values]


def _is_missing(value: Any) -> bool:
    # Lists/arrays are values, not missing: only None and float NaN (pandas' NA for objects).
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
