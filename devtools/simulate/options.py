"""What traffic to make: the options, checked once, and the pauses the conversation gap allows."""

import math
from dataclasses import dataclass

from devtools.simulate.languages import LANGUAGES
from messagehooks.errors import ConfigError


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What traffic to make; the generated statistics follow these numbers (tests check them).

    `chats` None: no chat budget; `duration` None: until stopped. `conversation_gap` is the
    pipeline's gap in wall-clock seconds (None: not known, pauses as drawn). `returning_after` is
    in script seconds (None: four gaps, or 7,200 s without a gap). `give_up_after`: seconds without
    a 2xx answer, while deliveries fail, after which the ingest counts as unreachable (None: never).
    """

    chats: int | None = None
    rate: float = 5.0
    duration: float | None = 60.0
    seed: int = 0
    dropoff: float = 1.0
    escalation: float = 0.15
    returning: float = 0.10
    pii: float = 0.25
    languages: tuple[str, ...] = tuple(LANGUAGES)
    time_scale: float = 1.0
    returning_after: float | None = None
    conversation_gap: float | None = None
    channel: int = 761536
    retry_scale: float = 1.0
    disorder: float = 0.2
    timeout: float = 10.0
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        for name in ("escalation", "returning", "pii", "disorder"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"--{name} must be a probability between 0 and 1, got {value}")
        if self.rate <= 0 or self.time_scale <= 0 or (self.chats is not None and self.chats < 1):
            raise ConfigError("--rate, --time-scale must be > 0 and --chats >= 1")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError("--duration must be > 0 (or none: until stopped)")
        if self.conversation_gap is not None and self.conversation_gap <= 0:
            raise ConfigError(f"the conversation gap must be > 0 s, got {self.conversation_gap}")
        unknown = set(self.languages) - set(LANGUAGES)
        if unknown:
            raise ConfigError(f"unknown languages {sorted(unknown)}; choose from {', '.join(LANGUAGES)}")
        gap = self.conversation_gap
        if gap is not None and self.return_after * self.time_scale <= gap:
            raise ConfigError(
                f"--returning-after {self.return_after:g} s (x time scale {self.time_scale:g}) must exceed "
                f"the conversation gap ({gap:g} s, MESSAGEHOOKS_CONVERSATION_GAP): a returning customer "
                "starts a new conversation"
            )

    @property
    def return_after(self) -> float:
        """Script seconds from a customer's last message to their return."""
        if self.returning_after is not None:
            return self.returning_after
        if self.conversation_gap is None:
            return 7200.0
        return RETURN_GAPS * self.conversation_gap / self.time_scale

    @property
    def longest_pause(self) -> float:
        """Script seconds a conversation may stay silent between two messages: half the gap."""
        if self.conversation_gap is None:
            return math.inf
        return PAUSE_SHARE_OF_GAP * self.conversation_gap / self.time_scale


PAUSE_SHARE_OF_GAP = 0.5
"""Every pause inside a conversation stays within this share of the gap: the pipeline's delays
(retries aside) never make a continuing customer look gone."""
RETURN_GAPS = 4.0
"""A returning customer comes back after this many gaps (7,200 s for the default 1,800 s gap)."""
