"""The idle sweep: which chats the wall-clock timer closes, and closing them safely.

Kept apart from the Faust wiring (streams/agents.py) so its two hazards are testable without a
broker: a rebalance may take chats out of the table while the sweep awaits Kafka's acks (a
stale key must be skipped, not crash the worker), and a partition is only "caught up" against
end offsets fetched from the broker at the sweep, never a high watermark remembered from the
last fetch (after a pause it is stale, and the chats' next messages still wait in Kafka).
"""

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass

from streams.sessions import ChatState, Output, SessionSettings, flush, is_open

Emit = Callable[[bytes, Output], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did: chats flushed, chats forgotten, and keys skipped as gone."""

    closed: int = 0
    forgotten: int = 0
    vanished: int = 0


def next_offset(processed: int | None, committed: int | None) -> int | None:
    """The offset this worker reads next: after the last one processed, else the committed one."""
    if processed is not None:
        return processed + 1
    return committed


def caught_up(position: int | None, end: int | None) -> bool:
    """Whether a partition read up to `position` (next offset) has nothing left before `end`.

    Unknown numbers mean not caught up: closing too late is harmless, too early splits a
    conversation whose next message is still in Kafka.
    """
    return position is not None and end is not None and position >= end


def caught_up_partitions(positions: Mapping[int, int | None], ends: Mapping[int, int | None]) -> set[int]:
    """The partitions (of `positions`) whose fresh end offset the worker has reached."""
    return {
        partition for partition, position in positions.items() if caught_up(position, ends.get(partition))
    }


async def sweep(
    chats: MutableMapping[bytes, ChatState],
    *,
    owns: Callable[[bytes], bool],
    idle_seconds: Callable[[bytes], float],
    emit: Emit,
    settings: SessionSettings,
    retention: float,
    forget: Callable[[bytes], None] = lambda key: None,
) -> SweepResult:
    """Flush open chats idle for more than the gap; forget closed ones idle past `retention`.

    Args:
        chats: The chats table (or any mapping); other coroutines may remove keys meanwhile.
        owns: Whether this worker owns the key's partition *now* and that partition is caught
            up; asked again after every await, since a rebalance may have moved it.
        idle_seconds: Wall-clock seconds the chat had been inactive on this worker when the
            end offsets behind `owns` were fetched (not now: a pause since would count too).
        emit: Sends a flush's outputs and waits for their acknowledgement.
        settings: The session settings (the conversation gap).
        retention: Seconds after which a chat with nothing open is deleted (dedup memory).
        forget: Called with each deleted key (to drop the caller's bookkeeping of it).
    """
    closed = forgotten = vanished = 0
    for key in list(chats.keys()):
        if not owns(key):
            continue  # another worker owns it now (a stale copy), or a backlog is pending
        state = chats.get(key)
        if state is None:
            vanished += 1  # removed by a rebalance since the key list was taken
            continue
        idle = idle_seconds(key)
        if is_open(state) and idle > settings.conversation_gap:
            state, out = flush(state, settings)
            await emit(key, out)
            if not owns(key):
                # Revoked during the await: the new owner recovers the unflushed state from the
                # changelog and closes the conversation itself, with the same ids.
                vanished += 1
                continue
            chats[key] = state
            closed += 1
        elif not is_open(state) and idle > retention:
            if chats.pop(key, None) is not None:  # nothing open and past any retry
                forgotten += 1
            forget(key)
    return SweepResult(closed=closed, forgotten=forgotten, vanished=vanished)
