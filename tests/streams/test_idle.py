"""The idle sweep under rebalances (chats vanish mid-sweep) and the caught-up rule."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.idle import caught_up, caught_up_partitions, next_offset, sweep
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
