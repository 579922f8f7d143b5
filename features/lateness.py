"""The late rule, once: the stream, the sink and the backfill flag the same messages late.

A message is late when its event time is older than its chat's newest accepted one by more than
the allowed lateness (docs/streams.md, "Late"). The stream does not pair it; every writer of the
`messages` table stores it with `late = true`.
"""

from collections.abc import Iterable

from messagehooks.schema import Message


def is_late(timestamp: float, newest: float | None, allowed_lateness: float) -> bool:
    """Whether a message at `timestamp` is late, given its chat's newest event time (None: none yet)."""
    return newest is not None and timestamp < newest - allowed_lateness


def identity(message: Message) -> tuple[str, str]:
    """What makes a message unique, in the stream and in the tables: (chat id, message id)."""
    return message.chat_id, message.message_id


def late_ids(arrivals: Iterable[Message], allowed_lateness: float) -> set[tuple[str, str]]:
    """Identities of the messages the stream flags late, given the order they arrived in.

    A repeat is judged at its first delivery only; a late message does not move its chat's newest
    event time (the stream does not accept it).
    """
    newest: dict[str, float] = {}
    late: set[tuple[str, str]] = set()
    seen: set[tuple[str, str]] = set()
    for message in arrivals:
        ident = identity(message)
        if ident in seen:
            continue
        seen.add(ident)
        ts = float(message.timestamp)
        if is_late(ts, newest.get(message.chat_id), allowed_lateness):
            late.add(ident)
        elif ts > newest.get(message.chat_id, float("-inf")):
            newest[message.chat_id] = ts
    return late
