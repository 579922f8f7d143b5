"""A fake clock for the simulator (devtools.simulate.Clock): its sleeps move its time, at once."""

import asyncio


class FakeClock:
    """Time that passes only when someone sleeps: a sleep of `s` moves it `s` on and returns.

    Concurrent sleepers (the send loop, retrying deliveries) share the one time, so it runs ahead
    of what real concurrent waits would take, never behind: deadlines come no later than for real.
    Each sleep yields to the event loop once, so the other tasks run in between.
    """

    def __init__(self, start: float = 1.7e9) -> None:
        self.now = start

    def time(self) -> float:
        """The fake time, in seconds since the epoch."""
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Move the time `seconds` on, then let the other tasks run."""
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)
