"""One poller for "wait until this holds" in tests, instead of hand-written loops and fixed sleeps.

`eventually` calls a condition until it returns something truthy and returns that; at the
timeout (or once `give_up` says waiting is pointless, e.g. a process died) it returns the last,
falsy, value instead of raising, so the test's own assertion on it fails with the test's message.
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _never() -> bool:
    return False


class _Until:
    """When polling ends: a truthy value, the deadline, or `give_up()`."""

    def __init__(self, timeout: float, give_up: Callable[[], bool]) -> None:
        self.deadline = time.monotonic() + timeout
        self.give_up = give_up

    def over(self, value: object) -> bool:
        return bool(value) or time.monotonic() >= self.deadline or self.give_up()


def eventually(
    condition: Callable[[], T], *, timeout: float, interval: float = 0.2, give_up: Callable[[], bool] = _never
) -> T:
    """`condition()` once it is truthy, polled every `interval` s; its last value after `timeout` s."""
    until = _Until(timeout, give_up)
    while not until.over(value := condition()):
        time.sleep(interval)
    return value


async def eventually_async(
    condition: Callable[[], T | Awaitable[T]],
    *,
    timeout: float,
    interval: float = 0.2,
    give_up: Callable[[], bool] = _never,
) -> T:
    """`eventually` in an event loop (asyncio sleeps); `condition` may also be a coroutine function."""
    until = _Until(timeout, give_up)
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if until.over(value):
            return value  # type: ignore[return-value]  # awaited above: mypy cannot narrow T | Awaitable[T] to T
        await asyncio.sleep(interval)
