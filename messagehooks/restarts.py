"""When to restart a crashed process, and when to give up: a pure policy, clock passed in.

`Backoff` doubles a delay from `initial` up to `ceiling`; a run that stayed up `stable_after`
seconds starts again from `initial`. `RestartBudget` adds the give-up rule: more than
`max_restarts` crashes within `window` seconds means the process cannot stay up (a bad
setting, a full disk) and restarting it again would only hide that.
"""

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Exponential delays between attempts: initial, 2x, 4x, ... capped at `ceiling`."""

    initial: float = 0.5
    ceiling: float = 10.0
    factor: float = 2.0
    _next: float | None = field(default=None, init=False, repr=False)

    def next_delay(self) -> float:
        """The delay before the next attempt (each call doubles the following one)."""
        delay = self.initial if self._next is None else self._next
        self._next = min(self.ceiling, delay * self.factor)
        return delay

    def reset(self) -> None:
        """Start again from `initial` (after a success)."""
        self._next = None


@dataclass
class RestartBudget:
    """Crashes of one process: the delay before its restart, or None once it should stay down."""

    max_restarts: int = 5
    window: float = 60.0
    stable_after: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    _crashes: deque[float] = field(default_factory=deque, init=False, repr=False)
    _started: float | None = field(default=None, init=False, repr=False)

    def started(self, now: float) -> None:
        """The process (re)started at `now`."""
        self._started = now

    def crashed(self, now: float) -> float | None:
        """Record a crash at `now`; the seconds to wait before restarting, or None to give up."""
        if self._started is not None and now - self._started >= self.stable_after:
            self.backoff.reset()  # it had been running fine: this is a new incident
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.window:
            self._crashes.popleft()
        if len(self._crashes) > self.max_restarts:
            return None
        return self.backoff.next_delay()

    def recent_crashes(self) -> int:
        """Crashes counted in the current window."""
        return len(self._crashes)
