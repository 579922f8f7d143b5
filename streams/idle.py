"""The idle timer's rules: which chats it closes, which partitions are caught up, closing safely.

Kept apart from the Faust wiring (streams/agents.py), pure and with the time passed in, so the
rules are testable without a broker: a chat is idle for the wall-clock time since this worker
last processed it or got its partition (`Activity`); a partition is only "caught up" against
end offsets fetched from the broker at the sweep, never a high watermark remembered from the
last fetch (after a pause it is stale, and the chats' next messages still wait in Kafka); and a
rebalance may take chats out of the table while the sweep awaits Kafka's acks (a stale key
must be skipped, not crash the worker).
"""

from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

from streams.sessions import ChatState, Output, SessionSettings, flush, is_open

Emit = Callable[[bytes, Output], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one sweep did: chats flushed, chats forgotten, and keys skipped as gone."""

    closed: int = 0
    forgotten: int = 0
    vanished: int = 0


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives `key` (as aiokafka and Java do)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def check_interval(conversation_gap: float) -> float:
    """How often the wall-clock timer looks for idle chats: a quarter gap, 0.5-10 s."""
    return min(10.0, max(0.5, conversation_gap / 4))


def retention(settings: SessionSettings) -> float:
    """Seconds after which a chat with nothing open is forgotten: past any retry of its messages."""
    return 2 * settings.conversation_gap + settings.allowed_lateness


@dataclass
class Activity:
    """One worker's view of when its chats and partitions were last active, by its own clock.

    Idleness counts from when this worker last processed a chat's message, or from when it got
    the chat's partition if later (a chat it recovered or resumed but has not seen yet), or
    from its start: a restart or a rebalance never makes a chat look idle at once. Times are
    monotonic seconds passed in by the caller.

    Attributes:
        partitions: Partitions of the source topic (keys map to them as Kafka's partitioner does).
        started: When the worker started.
        last_seen: Per chat key, when its last message was processed here.
        assigned_at: Per owned partition, when this worker got it.
        processed: Per owned partition, the offset of the last message processed here.
    """

    partitions: int
    started: float
    last_seen: dict[bytes, float] = field(default_factory=dict)
    assigned_at: dict[int, float] = field(default_factory=dict)
    processed: dict[int, int] = field(default_factory=dict)

    def process(self, partition: int, offset: int) -> None:
        """Record that the message at `offset` of `partition` was processed."""
        self.processed[partition] = offset

    def seen(self, key: bytes, now: float) -> None:
        """Record that the chat `key` got a message (its state was written) at `now`."""
        self.last_seen[key] = now

    def assign(self, partitions: Collection[int], now: float) -> None:
        """The worker owns `partitions` from `now`: forget what it processed of any other.

        A partition new to this worker counts its chats' idleness from `now`, and what was
        processed of it before it left is forgotten (another owner went on meanwhile).
        """
        for partition in set(partitions) - set(self.assigned_at):
            self.processed.pop(partition, None)
            self.assigned_at[partition] = now
        for partition in set(self.assigned_at) - set(partitions):
            del self.assigned_at[partition]
            self.processed.pop(partition, None)

    def forget(self, key: bytes) -> None:
        """Drop the chat `key` (deleted from the table)."""
        self.last_seen.pop(key, None)

    def idle_seconds(self, key: bytes, at: float) -> float:
        """Seconds the chat `key` had been inactive on this worker at `at`."""
        since = self.assigned_at.get(partition_of(key, self.partitions), self.started)
        return at - max(self.last_seen.get(key, since), since)

    def caught_up(self, ends: Mapping[int, int | None], committed: Mapping[int, int | None]) -> set[int]:
        """The partitions of `ends` this worker has read to their end.

        Args:
            ends: Per partition, its end offset fetched from the broker now (None: unknown).
            committed: Per partition, the consumer's committed offset (None: unknown); the
                position of a partition with nothing processed here yet.
        """
        positions = {
            partition: next_offset(self.processed.get(partition), committed.get(partition))
            for partition in ends
        }
        return caught_up_partitions(positions, ends)

    def lag(self, partition: int, highwater: int) -> int:
        """Messages of `partition` before `highwater` not processed here yet."""
        return max(0, highwater - self.processed.get(partition, -1) - 1)


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
