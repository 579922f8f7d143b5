"""Per-hook rate limit: a token bucket per hook, refilled at `rate` requests/s.

The bucket holds one second of requests, and never less than one request: a rate below 1/s
(0.5 = one request every 2 s) would otherwise never hold a whole token and refuse everything.
Off (rate 0) by default: Landbot's own delivery rate is bounded by the bot's traffic; the limit
is for a hook exposed to the internet that must not let one noisy source starve the others.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """Decides, per hook, whether one more request fits; `retry_after` says when one will."""

    rate: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether there is a limit at all."""
        return self.rate > 0

    @property
    def capacity(self) -> float:
        """Most tokens a bucket holds: one second of requests, at least one request."""
        return max(1.0, self.rate)

    def allow(self, hook: str) -> bool:
        """Take one token from `hook`'s bucket if it has one."""
        if not self.enabled:
            return True
        now = self.clock()
        tokens, last = self._buckets.get(hook, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[hook] = (tokens - 1.0 if allowed else tokens, now)
        return allowed

    def retry_after(self, hook: str) -> float:
        """Seconds until `hook`'s bucket holds a token again."""
        if not self.enabled:
            return 0.0
        tokens, last = self._buckets.get(hook, (self.capacity, self.clock()))
        tokens = min(self.capacity, tokens + (self.clock() - last) * self.rate)
        return max(0.0, (1.0 - tokens) / self.rate)
