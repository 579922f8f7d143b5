"""The idle rules: the sweep under rebalances (chats vanish mid-sweep), idleness, caught up."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.idle import Activity, caught_up, caught_up_partitions, next_offset, partition_of, sweep
from streams.sessions import ChatState, Output, SessionSettings, is_open, step
from tests.factories import BASE_TS, message

GAP = 30.0
SETTINGS = SessionSettings(conversation_gap=GAP, allowed_lateness=1.0)
RETENTION = 2 * GAP + 1.0


def _chat(key: bytes, open_: bool) -> ChatState:
    state, _ = step(None, message(chat=key.decode(), role="bot", ts=BASE_TS, body="Hi"), SETTINGS)
    if not open_:
        state.buffer.clear()
        state.session.conversation = None
    return state


@st.composite
def sweeps(draw):
    """Chats (open or not, idle or not), and the rebalance each emit triggers."""
    keys = [f"{i}".encode() for i in range(draw(st.integers(1, 12)))]
    chats = {key: _chat(key, draw(st.booleans())) for key in keys}
    idle = {key: draw(st.sampled_from([0.0, GAP + 1, RETENTION + 1])) for key in keys}
    owned = {key for key in keys if draw(st.integers(0, 4))}  # most are owned
    # After the n-th emit, a rebalance revokes these keys (their store copies are dropped).
    revocations = draw(st.lists(st.lists(st.sampled_from(keys), max_size=4), max_size=6))
    return chats, idle, owned, revocations


@settings(max_examples=300, deadline=None)
@given(sweeps())
def test_a_rebalance_during_the_sweep_never_crashes_it_nor_writes_a_revoked_chat(case):
    chats, idle, owned, revocations = case
    writes: list[bytes] = []

    class Table(dict[bytes, ChatState]):
        def __setitem__(self, key: bytes, value: ChatState) -> None:
            assert key in owned, f"wrote {key!r} after it was revoked"
            writes.append(key)
            super().__setitem__(key, value)

    table = Table(chats)
    emitted: list[bytes] = []

    async def emit(key: bytes, out: Output) -> None:
        await asyncio.sleep(0)
        emitted.append(key)
        if revocations:
            for revoked in revocations.pop(0):
                owned.discard(revoked)
                table.pop(revoked, None)

    result = asyncio.run(
        sweep(
            table,
            owns=lambda key: key in owned,
            idle_seconds=idle.__getitem__,
            emit=emit,
            settings=SETTINGS,
            retention=RETENTION,
        )
    )
    assert result.closed == len(writes)
    for key in writes:  # what it wrote back is closed (unless revoked since)
        assert key not in table or not is_open(table[key])
    for key, state in table.items():  # what is owned, left open and idle was not skipped
        if key in owned and key not in emitted:
            assert not (is_open(state) and idle[key] > GAP)


def test_the_old_crash_a_chat_removed_while_the_sweep_awaits():
    """Three idle chats; the first flush's await sees a rebalance drop the other two."""
    table = {key: _chat(key, True) for key in (b"1", b"2", b"3")}

    async def emit(key: bytes, out: Output) -> None:
        table.pop(b"2", None)
        table.pop(b"3", None)

    result = asyncio.run(
        sweep(
            table,
            owns=lambda key: True,
            idle_seconds=lambda key: GAP + 1,
            emit=emit,
            settings=SETTINGS,
            retention=RETENTION,
        )
    )
    assert (result.closed, result.vanished) == (1, 2)


def test_caught_up_uses_the_end_offset_it_is_given():
    # A paused worker read up to offset 100; the high watermark it remembers says 100, the
    # broker says 130 now: the fresh number decides.
    assert caught_up(next_offset(99, None), 100)
    assert not caught_up(next_offset(99, None), 130)
    assert caught_up(next_offset(None, 130), 130)  # nothing processed yet: the committed offset
    assert not caught_up(None, 130)
    assert not caught_up(5, None)
    assert caught_up_partitions({0: 100, 1: 100, 2: None}, {0: 100, 1: 130, 2: 0}) == {0}


# --- Activity: the wall-clock idle rule and the caught-up rule of one worker ----------------------

PARTITIONS = 4
KEYS = [f"chat{i}".encode() for i in range(8)]


def test_idleness_counts_from_the_last_message_or_from_getting_the_partition():
    activity = Activity(PARTITIONS, started=100.0)
    key = KEYS[0]
    partition = partition_of(key, PARTITIONS)
    assert activity.idle_seconds(key, 130.0) == 30.0  # not seen, no assignment yet: since start
    activity.assign({partition}, 110.0)
    assert activity.idle_seconds(key, 130.0) == 20.0  # recovered with the partition: since then
    activity.seen(key, 125.0)
    assert activity.idle_seconds(key, 130.0) == 5.0
    activity.assign(set(), 140.0)  # lost it, got it back: a chat seen before counts from now
    activity.assign({partition}, 150.0)
    assert activity.idle_seconds(key, 160.0) == 10.0
    activity.seen(key, 170.0)
    activity.forget(key)  # deleted from the table: since the assignment again
    assert activity.idle_seconds(key, 180.0) == 30.0


def test_a_partition_processed_here_is_caught_up_at_its_fresh_end_offset():
    activity = Activity(PARTITIONS, started=0.0)
    activity.assign({0, 1, 2}, 1.0)
    activity.process(0, 99)  # read up to offset 99: the next one is 100
    ends = {0: 100, 1: 130, 2: None}
    assert activity.caught_up(ends, {0: 50, 1: 130, 2: 7}) == {0, 1}  # 1: nothing read, committed
    assert activity.caught_up({0: 130}, {}) == set()  # the broker says more came meanwhile
    assert activity.lag(0, 130) == 30
    assert activity.lag(1, 130) == 130


def test_what_was_processed_of_a_partition_is_forgotten_when_it_leaves():
    activity = Activity(PARTITIONS, started=0.0)
    activity.assign({0}, 1.0)
    activity.process(0, 99)
    activity.assign(set(), 2.0)
    activity.assign({0}, 3.0)  # another owner went on meanwhile: the committed offset decides
    assert activity.caught_up({0: 100}, {0: 80}) == set()
    assert activity.caught_up({0: 100}, {0: 100}) == {0}


@st.composite
def histories(draw):
    """Worker events at non-decreasing times: assignments, messages of chats, deletions."""
    started = now = draw(st.floats(0, 100))
    steps = []
    for _ in range(draw(st.integers(0, 30))):
        now += draw(st.floats(0, 50))
        kind = draw(st.sampled_from(["assign", "seen", "forget"]))
        if kind == "assign":
            steps.append((now, kind, frozenset(draw(st.sets(st.integers(0, PARTITIONS - 1))))))
        else:
            steps.append((now, kind, draw(st.sampled_from(KEYS))))
    return started, steps, now + draw(st.floats(0, 50))


@settings(max_examples=300, deadline=None)
@given(histories())
def test_idleness_never_exceeds_the_time_since_the_chat_or_its_partition_was_last_active(history):
    started, steps, at = history
    activity = Activity(PARTITIONS, started=started)
    owned_since: dict[int, float] = {}  # the start of each partition's current ownership
    seen_at: dict[bytes, float] = {}
    for now, kind, arg in steps:
        if kind == "assign":
            owned_since = {p: owned_since.get(p, now) for p in arg}
            activity.assign(arg, now)
        elif kind == "seen":
            seen_at[arg] = now
            activity.seen(arg, now)
        else:
            seen_at.pop(arg, None)
            activity.forget(arg)
    for key in KEYS:
        idle = activity.idle_seconds(key, at)
        since = owned_since.get(partition_of(key, PARTITIONS), started)
        assert 0 <= idle <= at - since
        if key in seen_at:
            assert idle <= at - seen_at[key]
            if seen_at[key] >= since:  # seen during this ownership: counts from that message
                assert idle == at - seen_at[key]


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.integers(0, PARTITIONS - 1), st.integers(0, 1000)),
    st.dictionaries(st.integers(0, PARTITIONS - 1), st.none() | st.integers(0, 1000)),
    st.dictionaries(st.integers(0, PARTITIONS - 1), st.none() | st.integers(0, 1000)),
    st.integers(0, PARTITIONS - 1),
    st.integers(0, 1000),
)
def test_reading_further_never_leaves_a_caught_up_partition_behind(processed, ends, committed, p, offset):
    activity = Activity(PARTITIONS, started=0.0, processed=dict(processed))
    before = activity.caught_up(ends, committed)
    assert before <= {q for q, end in ends.items() if end is not None}  # an unknown end: not caught up
    position = next_offset(processed.get(p), committed.get(p))
    activity.process(p, max(offset, (position or 0) - 1))  # the next message read, or a later one
    assert before <= activity.caught_up(ends, committed)
