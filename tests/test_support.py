"""The tests' own support: the poller returns what it waited for, or the last value at the end."""

import asyncio
import itertools
import time

from tests.support.clock import FakeClock
from tests.support.poll import eventually, eventually_async


def test_eventually_returns_the_first_truthy_value():
    counter = itertools.count()
    assert eventually(lambda: next(counter) >= 3 and "done", timeout=5, interval=0) == "done"


def test_eventually_returns_the_last_falsy_value_at_the_timeout_or_when_told_to_give_up():
    started = time.monotonic()
    assert eventually(lambda: [], timeout=0.05, interval=0.01) == []
    assert time.monotonic() - started >= 0.05
    assert eventually(lambda: None, timeout=60, give_up=lambda: True) is None


def test_eventually_async_awaits_a_coroutine_condition():
    counter = itertools.count()

    async def condition() -> int:
        return next(counter) >= 2

    assert asyncio.run(eventually_async(condition, timeout=5, interval=0)) is True


def test_the_fake_clock_moves_only_when_slept_on():
    clock = FakeClock(start=100.0)
    asyncio.run(clock.sleep(2.5))
    asyncio.run(clock.sleep(-1))
    assert clock.time() == 102.5
