r"""A detection copy of a text: Unicode and escape tricks undone, with a map back to the original.

Detectors run on the copy, and what they find is masked in the original text, so text without PII
is never changed (no NFKC of a customer's accents in the dataset). The copy undoes, per character:
compatibility forms (NFKC: full-width at signs and digits, ligatures), digits of other scripts
(``٦٠٠`` -> ``600``), format characters (zero-width spaces and joiners, soft hyphens, BOM) which
are dropped, spaces of every kind (NBSP, thin, figure, ideographic) which become one ASCII space,
dashes and minus signs which become ``-``; and per sequence: ``%40`` (with ``%2E``, ``%2B``,
``%2D``, ``%5F``) from URLs, ``\u0040``-style escapes from JSON, ``&#64;``/``&commat;`` from HTML,
and runs of spaces between two digits (``4111  1111``) which become one.
"""

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

_PERCENT = {"40": "@", "2e": ".", "2b": "+", "2d": "-", "5f": "_"}
_ENTITIES = {"&commat;": "@", "&#64;": "@", "&#x40;": "@", "&#46;": ".", "&#x2e;": "."}
_OTHER_DOTS = {"\u3002": ".", "\uff61": "."}  # ideographic full stops (NFKC keeps U+3002)

# What the copy may change: escapes, runs of spaces between digits, and any non-ASCII character.
_SPECIAL = re.compile(
    r"%(?:40|2[eEbBdD]|5[fF])"
    r"|\\+u[0-9a-fA-F]{4}|\\+x40"
    r"|&(?:commat|#64|#x40|#46|#x2[eE]);"
    r"|(?<=[0-9]) {2,}(?=[0-9])"
    r"|[^\x00-\x7f]"
)


@lru_cache(maxsize=4096)
def _char(char: str) -> str:
    """The detection form of one character."""
    category = unicodedata.category(char)
    if category == "Cf":
        return ""
    if category == "Zs":
        return " "
    if category == "Pd" or char == "\u2212":
        return "-"
    if category == "Nd":
        return str(unicodedata.digit(char))
    if char in _OTHER_DOTS:
        return _OTHER_DOTS[char]
    return unicodedata.normalize("NFKC", char) if not char.isascii() else char


def _replacement(match: re.Match[str]) -> str:
    found = match.group()
    if found.startswith("%"):
        return _PERCENT[found[1:].lower()]
    if found.startswith("\\"):  # once or twice escaped
        escape = found.lstrip("\\")
        return "@" if escape == "x40" else _char(chr(int(escape[1:], 16)))
    if found.startswith("&"):
        return _ENTITIES[found.lower()]
    if found.startswith(" "):
        return " "
    return _char(found)


@dataclass(frozen=True, slots=True)
class Normalized:
    """The detection copy `text` of `original`, and where each changed piece came from.

    Piece ``i`` replaced ``original[orig_starts[i]:orig_ends[i]]`` by
    ``text[starts[i]:ends[i]]``; between pieces the two texts are equal.
    """

    original: str
    text: str
    starts: tuple[int, ...] = ()
    ends: tuple[int, ...] = ()
    orig_starts: tuple[int, ...] = ()
    orig_ends: tuple[int, ...] = ()

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the original text behind ``text[start:end]`` (whole changed pieces)."""
        return self._start(start), self._end(end)

    def _start(self, position: int) -> int:
        i = bisect_right(self.starts, position) - 1
        if i < 0:
            return position
        if position < self.ends[i]:
            return self.orig_starts[i]
        return position - self.ends[i] + self.orig_ends[i]

    def _end(self, position: int) -> int:
        i = bisect_right(self.starts, position - 1) - 1
        if i < 0:
            return position
        if position <= self.ends[i] and position > self.starts[i]:
            return self.orig_ends[i]
        return position - self.ends[i] + self.orig_ends[i]


def _other_digits() -> str:
    """A character class of the decimal digits of other scripts in the BMP (Arabic-Indic, ...)."""
    digits = [chr(code) for code in range(0x80, 0x10000) if unicodedata.category(chr(code)) == "Nd"]
    return "".join(digits)


# What the copy changes beyond NFKC: format characters, other dashes and stops, the ogham space,
# and digits of other scripts; then the ASCII escapes and the double spaces between digits.
_KEPT_BY_NFKC = re.compile(
    r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    rf"\u1680\u2010-\u2015\u2212\u3002{_other_digits()}]"
)
_ASCII_SPECIAL = re.compile(r"%(?:40|2[eEbBdD]|5[fF])|\\(?:u[0-9a-fA-F]{4}|x40)|&[#c]|[0-9]  ")


def unchanged(text: str) -> bool:
    """A quick test that the copy of `text` is `text` itself (true of most chat texts)."""
    if text.isascii():
        if "%" not in text and "\\" not in text and "&" not in text and "  " not in text:
            return True
    elif not unicodedata.is_normalized("NFKC", text) or _KEPT_BY_NFKC.search(text) is not None:
        return False
    return _ASCII_SPECIAL.search(text) is None


def normalize(text: str) -> Normalized:
    """The detection copy of `text` (the text itself when nothing in it needs undoing)."""
    if unchanged(text):
        return Normalized(text, text)
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    orig_starts: list[int] = []
    orig_ends: list[int] = []
    length = 0  # of the copy so far
    last = 0  # end of the previous piece in the original
    for match in _SPECIAL.finditer(text):
        replacement = _replacement(match)
        if replacement == match.group():
            continue
        begin, finish = match.span()
        parts.append(text[last:begin])
        length += begin - last
        starts.append(length)
        orig_starts.append(begin)
        parts.append(replacement)
        length += len(replacement)
        ends.append(length)
        orig_ends.append(finish)
        last = finish
    if not starts:
        return Normalized(text, text)
    parts.append(text[last:])
    return Normalized(text, "".join(parts), tuple(starts), tuple(ends), tuple(orig_starts), tuple(orig_ends))
