"""Topic names (docs/topics.md), derived from one configurable prefix (the only place they live)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """The project's topics for a given prefix (default ``landbot.``)."""

    prefix: str = "landbot."

    @property
    def raw(self) -> str:
        """One record per accepted HTTP request, keyed by the chat id of its first message."""
        return f"{self.prefix}raw"

    @property
    def messages(self) -> str:
        """One normalized message per record, keyed by chat id."""
        return f"{self.prefix}messages"

    @property
    def events(self) -> str:
        """Assign / unassign / other events (also on `messages`), keyed by chat id."""
        return f"{self.prefix}events"

    @property
    def turn_pairs(self) -> str:
        """Emitted turn pairs, keyed by chat id."""
        return f"{self.prefix}turn-pairs"

    @property
    def conversations(self) -> str:
        """Closed conversations with their transcript, keyed by chat id."""
        return f"{self.prefix}conversations"

    @property
    def dead_letter(self) -> str:
        """Rejected payloads or messages with reason and original bytes, keyed by hook name."""
        return f"{self.prefix}dead-letter"

    def all(self) -> tuple[str, ...]:
        """Every topic, in the order of docs/topics.md."""
        return (
            self.raw,
            self.messages,
            self.events,
            self.turn_pairs,
            self.conversations,
            self.dead_letter,
        )
