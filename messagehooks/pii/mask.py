"""`mask_pii`: find personal data in the detection copy of a text, mask it in the text itself.

Detectors run in order on the copy (messagehooks/pii/normalize.py) — e-mails, written-out
e-mails, IBANs, cards, phones — each on the copy with the earlier finds already replaced by their
masks, so a longer, more certain match wins over a vaguer one (an IBAN's digits are never a
phone). The finds are then mapped back to the original text and masked there: text without PII
comes out unchanged, character for character.

The masks contain no digit and no ``@``, and the number detectors treat a mask like the digits it
replaced, so ``mask_pii`` is idempotent.
"""

import re
from bisect import bisect_right
from collections.abc import Callable

from messagehooks.pii import emails, numbers
from messagehooks.pii.normalize import normalize, unchanged

EMAIL = "<EMAIL>"
PHONE = "<PHONE>"
CARD = "<CARD>"
IBAN = "<IBAN>"
MASKS = (EMAIL, PHONE, CARD, IBAN)

_EMAIL = emails.email_pattern(MASKS)
_CARD = numbers.card_pattern(MASKS)
_PHONE = numbers.phone_pattern(MASKS)

_AT_OR_DIGIT = re.compile(r"[@0-9]")
_WRITTEN_AT = (" at ", "[at]", "(at)", "{at}", "<at>", "[ at ]", "( at )")


def _triggered(text: str) -> bool:
    """Whether `text` has what every detector needs one of: an "@", a digit or a written-out "at"."""
    if _AT_OR_DIGIT.search(text) is not None:
        return True
    lowered = text.lower()
    return ("at" in lowered and any(at in lowered for at in _WRITTEN_AT)) or "arroba" in lowered


Spans = list[tuple[int, int]]
Detector = Callable[[str], Spans]


def _emails(text: str) -> Spans:
    return [m.span() for m in _EMAIL.finditer(text)] if "@" in text else []


def _cards(text: str) -> Spans:
    if not numbers.maybe_number(text):
        return []
    return [m.span() for m in _CARD.finditer(text) if numbers.is_card(m.group())]


def _phones(text: str) -> Spans:
    if not numbers.maybe_number(text):
        return []
    spans = []
    for match in _PHONE.finditer(text):
        if numbers.phone_digits(match):
            start, end = match.span()
            # "(600 112 233" with no closing parenthesis: keep the "(" so the text stays balanced.
            unclosed = match.group().startswith("(") and ")" not in match.group()
            spans.append((start + unclosed, end))
    return spans


DETECTORS: tuple[tuple[str, Detector], ...] = (
    (EMAIL, _emails),
    (EMAIL, emails.obfuscated_spans),
    (IBAN, numbers.iban_spans),
    (CARD, _cards),
    (PHONE, _phones),
)
"""Mask and detector, in the order they run (an earlier find wins)."""


class _Finds:
    """Spans of the detection copy found so far, and the copy with them masked."""

    def __init__(self, text: str) -> None:
        self.text = text  # the copy, with the finds masked
        self._copy = text
        self._found: list[tuple[int, int, str]] = []  # spans of the copy, sorted
        self._starts: list[int] = []  # where each find's mask starts in `text`

    def add(self, spans: Spans, mask: str) -> None:
        """Record finds given as spans of `text`, and mask them there."""
        if not spans:
            return
        for start, end in spans:
            self._found.append((self._to_copy(start, True), self._to_copy(end, False), mask))
        self._found.sort()
        parts = []
        last = length = 0
        self._starts = []
        for start, end, found_mask in self._found:
            parts.append(self._copy[last:start])
            length += start - last
            self._starts.append(length)
            parts.append(found_mask)
            length += len(found_mask)
            last = end
        parts.append(self._copy[last:])
        self.text = "".join(parts)

    def spans(self) -> list[tuple[int, int, str]]:
        """The finds, as spans of the detection copy, with their masks."""
        return self._found

    def _to_copy(self, position: int, is_start: bool) -> int:
        """A position of `text` as a position of the copy (a mask stands for its whole span)."""
        i = bisect_right(self._starts, position if is_start else position - 1) - 1
        if i < 0:
            return position
        start, end, mask = self._found[i]
        inside = position - self._starts[i]
        if 0 <= inside < len(mask) or (not is_start and inside == len(mask)):
            return start if is_start else end
        return position - (self._starts[i] + len(mask)) + end


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Spans of `text` holding personal data, with their masks: sorted, not overlapping.

    Runs on every text of the stream: a text with no ``@``, no digit and no written-out ``at``
    returns after a few quick scans.
    """
    copy = None if unchanged(text) else normalize(text)
    work = text if copy is None else copy.text
    if not _triggered(work):
        return []
    finds: _Finds | None = None
    for mask, detector in DETECTORS:
        spans = detector(work)
        if spans:
            finds = finds or _Finds(work)
            finds.add(spans, mask)
            work = finds.text
    if finds is None:
        return []
    if copy is None:
        return finds.spans()
    return [(*copy.original_span(start, end), mask) for start, end, mask in finds.spans()]


def replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    """`text` with each of the sorted, disjoint `spans` replaced by its mask."""
    parts = []
    last = 0
    for start, end, mask in spans:
        parts.append(text[last:start])
        parts.append(mask)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def mask_pii(text: str) -> str:
    """Replace e-mails, IBANs, card and phone numbers by ``<EMAIL>``/``<IBAN>``/``<CARD>``/``<PHONE>``."""
    spans = find_pii(text)
    return replace_spans(text, spans) if spans else text
