"""Pseudonymous ids: chat, sender and message ids derived from customer values, hashed at the ingest.

The ingest replaces the ids of each message once, when it normalizes it (messagehooks/validation.py),
so every later id — the `messages` topic's key and `chat_id`, the worker's state, `pair_id` and
`conversation_id` (which embed the chat id), every table — is built from the pseudonym, and a
stream, a backfill and a resume derive the same ids as long as the salt is the same.

- With a salt (``MESSAGEHOOKS_ID_SALT``, the operator's secret): every chat id and sender id
  becomes ``p-`` and 24 hex digits of HMAC-SHA256(salt, id), and so does a message id that holds
  personal data. Without the salt nobody can tell which Landbot chat a row belongs to.
- Without one (the default): ids stay as Landbot sends them — they are Landbot's numbers, the
  key support staff use — except ids that hold personal data (an e-mail, a phone written with
  ``+`` or separators, a card, an IBAN: an adversary or a channel that uses phone numbers as ids),
  which are hashed with a public salt: hidden from a reader, not from someone who tries candidates.

A bare run of digits is an id, never personal data (Landbot's chat ids have 9 digits, like a
Spanish phone number without a prefix).
"""

import hashlib
import hmac
from dataclasses import dataclass

from messagehooks.pii.mask import mask_pii

PUBLIC_SALT = b"messagehooks: no MESSAGEHOOKS_ID_SALT set"
"""The salt of ids holding personal data when the operator set none (in the source: not secret)."""


def pseudonym(value: str, salt: bytes) -> str:
    """``p-`` and 24 hex digits (96 bits) of HMAC-SHA256 of `value` under `salt`."""
    return "p-" + hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:24]


def holds_pii(value: str) -> bool:
    """Whether an id holds personal data: not a bare number, and a detector finds something in it."""
    return not value.isdigit() and mask_pii(value) != value


@dataclass(frozen=True, slots=True)
class Pseudonyms:
    """The id rule of one deployment: `salt` is the operator's secret, empty when none is set."""

    salt: bytes = b""

    def chat(self, chat_id: str) -> str:
        """The chat id every record carries."""
        return self._hashed(chat_id, always=True)

    def sender(self, sender_id: str | None) -> str | None:
        """The sender id of the `messages` records and table."""
        return None if sender_id is None else self._hashed(sender_id, always=True)

    def message(self, message_id: str) -> str:
        """The message id: Landbot's uuid (or the content hash) unless it holds personal data."""
        return self._hashed(message_id, always=False)

    def _hashed(self, value: str, *, always: bool) -> str:
        if always and self.salt:
            return pseudonym(value, self.salt)
        if holds_pii(value):
            return pseudonym(value, self.salt or PUBLIC_SALT)
        return value


NO_SALT = Pseudonyms()
"""The rule when the operator set no salt: only ids holding personal data are hashed."""
