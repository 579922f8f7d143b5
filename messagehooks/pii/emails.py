"""E-mail address detectors, run on the detection copy (messagehooks/pii/normalize.py).

Plain addresses: a local part of letters (any script), digits and ``.!$%'*+-^_`{|}~``, an ``@``,
dotted labels and a top-level domain of two or more letters (``ana@example.com``,
``josé@correo.es``, ``用户@例子.中国``, ``ana@xn--bcher-kva.de``). ``/``, ``=``, ``?``, ``&``
and ``#`` end a local part, so in a URL only the address is masked.

Obfuscated addresses (``john dot doe at gmail dot com``, ``ana [at] example [dot] com``,
``ana (arroba) correo.es``): the ``@`` written as a word ("at", "arroba") or in brackets, the dots
as words ("dot", "punto", "point") or in brackets. To keep "look at example.com" and "available at
amazon.com" as they are, a bare ``at`` counts only when a dot is also written as a word, or the
local part holds ``.``, ``_``, ``+`` or a digit, or the domain is a known mail provider.
"""

import re
from collections.abc import Iterable

_MARK = r"\u0300-\u036f"  # combining accents left by the per-character normalization
_LOCAL_CHAR = rf"[\w{_MARK}.!$%'*+\-^`{{|}}~]"
_LABEL = rf"(?>[\w{_MARK}]+(?:-+[\w{_MARK}]+)*)"  # atomic: no backtracking inside a label
_TLD = rf"(?:[^\W\d_][{_MARK}]*){{2,}}|xn--[a-z0-9\-]+"


def email_pattern(masks: Iterable[str]) -> re.Pattern[str]:
    """Plain addresses, each from the start of a run of local-part characters.

    A long run without "@" is then scanned once; and no address starts right after a mask, so
    ``<EMAIL>'@x.io``, the output of a first pass, stays as it is (idempotence).
    """
    after_mask = "".join(rf"(?<!{re.escape(mask)})" for mask in masks)
    return re.compile(
        rf"(?<!{_LOCAL_CHAR}){after_mask}{_LOCAL_CHAR}++@(?:{_LABEL}\.)+(?:{_TLD})(?![\w{_MARK}])"
    )


_OPEN = r"[\[({<]"
_CLOSE = r"[\])}>]"
_AT_WORD = r"(?:at|arroba)"
_DOT_WORD = r"(?:dot|punto|point)"
_AT = rf"(?:\s*{_OPEN}\s*(?:{_AT_WORD}|@)\s*{_CLOSE}\s*|\s+{_AT_WORD}\s+)"
_DOT = rf"(?:\s*{_OPEN}\s*(?:{_DOT_WORD}|\.)\s*{_CLOSE}\s*|\s+{_DOT_WORD}\s+|\.)"
_PART = r"[\w+\-]++"

# At most 8 dots on each side: a chain of "a dot a dot ..." is then scanned a bounded number of
# times from each word, not to its end from every word (which was quadratic: 24 KB took 5 s).
OBFUSCATED = re.compile(
    rf"(?<![\w.])(?P<local>{_PART}(?:{_DOT}{_PART}){{0,8}})(?P<at>{_AT})"
    rf"(?P<domain>{_LABEL}(?:{_DOT}{_LABEL}){{0,8}}{_DOT}(?:[^\W\d_]{{2,}}))(?![\w])",
    re.IGNORECASE,
)
# An "at" token, a word, then a dot token or a dot and two letters: what every written-out address
# has, and few sentences with "at" do ("meet at noon. See you" has no letter right after its dot).
_MAYBE_OBFUSCATED = re.compile(
    rf"(?i)(?:\s{_AT_WORD}\s+|{_OPEN}\s*(?:{_AT_WORD}|@)\s*{_CLOSE})\s*[\w\-]+"
    rf"(?:\s+{_DOT_WORD}\s|\s*{_OPEN}\s*(?:{_DOT_WORD}|\.)\s*{_CLOSE}|\.[^\W\d_]{{2}})"
)
_WORDY = re.compile(rf"(?i)\s{_DOT_WORD}\s|{_OPEN}")
_MAIL_PROVIDERS = frozenset(
    "gmail googlemail hotmail outlook live msn yahoo ymail icloud me mac aol proton protonmail pm "
    "gmx web yandex mail zoho orange wanadoo free laposte sfr libero tiscali terra uol bol qq 163".split()
)


def obfuscated_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the written-out addresses in `text` (see the module docstring for the rule)."""
    if _MAYBE_OBFUSCATED.search(text) is None:
        return []
    spans = []
    for match in OBFUSCATED.finditer(text):
        local, at, domain = match.group("local", "at", "domain")
        provider = re.split(r"\W", domain, maxsplit=1)[0].lower()
        if (
            _WORDY.search(at) is not None
            or _WORDY.search(local) is not None
            or _WORDY.search(domain) is not None
            or re.search(r"[._+0-9]", local) is not None
            or provider in _MAIL_PROVIDERS
        ):
            spans.append(match.span())
    return spans
