r"""Masking of JSON-ish text and of dead-letter originals (text, or base64 of bytes that are not UTF-8).

A rejected payload is often not valid JSON, so customer fields are found by their key in the text
itself (``"name": "Ana"``, also escaped once, ``\"name\": \"Ana\"``), not by parsing; their values
become ``<PERSONAL>`` whatever they hold, and the rest goes through the detectors. A base64
original is decoded and read twice — as UTF-8 with every undecodable byte kept as is
(``surrogateescape``), and as Latin-1 (one character per byte) — and every byte range either
reading finds is masked, so an e-mail or a card inside Latin-1 or broken UTF-8 bytes is found
whichever the bytes are.
"""

import base64
import binascii
import re

from messagehooks.pii.mask import find_pii, replace_spans

PERSONAL = "<PERSONAL>"

PERSONAL_KEYS = (
    "name first_name last_name full_name firstname lastname surname nickname username "
    "email e_mail mail phone phone_number telephone mobile whatsapp "
    "address street city zip zipcode postal_code postcode birthdate birthday date_of_birth "
    "dni nif nie ssn passport tax_id iban card card_number"
).split()
"""Keys whose values are customer data whatever they look like (Landbot's `customer` fields)."""

_KEYED = re.compile(
    r'\\?"(?:' + "|".join(PERSONAL_KEYS) + r')\\?"\s*:\s*'
    r'(?:\\?"(?P<text>(?:[^"\\]|\\[^"])*)\\?"|(?P<number>-?[0-9][0-9.eE+\-]*))',
    re.IGNORECASE,
)

Spans = list[tuple[int, int, str]]


def _spans(text: str) -> Spans:
    """Customer-field values and detector finds of `text`, merged into sorted disjoint spans."""
    keyed: Spans = []
    if '"' in text:
        for match in _KEYED.finditer(text):
            if match.group("text") is not None:
                keyed.append((*match.span("text"), PERSONAL))
            else:
                keyed.append((match.start("number"), match.end("number"), f'"{PERSONAL}"'))
    return _merged(keyed + find_pii(text))


def _merged(spans: Spans) -> Spans:
    """Overlapping spans joined; of two starting together the longer (or the earlier listed) names it."""
    out: Spans = []
    for start, end, mask in sorted(spans, key=lambda span: (span[0], -span[1])):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]), out[-1][2])
        else:
            out.append((start, end, mask))
    return out


def mask_json_text(text: str) -> str:
    """A JSON-ish text with the values of customer fields and all detected personal data masked."""
    spans = _spans(text)
    return replace_spans(text, spans) if spans else text


def mask_original(original: str, encoding: str | None) -> str:
    """A dead letter's `original` with its personal data masked, in the same encoding."""
    if encoding != "base64":
        return mask_json_text(original)
    try:
        raw = base64.b64decode(original, validate=True)
    except (binascii.Error, ValueError):
        return mask_json_text(original)
    as_utf8 = raw.decode("utf-8", "surrogateescape")
    offsets = _byte_offsets(as_utf8)
    spans = [(offsets[start], offsets[end], mask) for start, end, mask in _spans(as_utf8)]
    spans = _merged(spans + _spans(raw.decode("latin-1")))
    if not spans:
        return original
    masked = replace_spans(raw.decode("latin-1"), spans).encode("latin-1")
    return base64.b64encode(masked).decode()


def _byte_offsets(text: str) -> list[int]:
    """The byte offset of each character position of `text` (and of its end) in its UTF-8 bytes."""
    offsets = [0]
    for char in text:
        offsets.append(offsets[-1] + len(char.encode("utf-8", "surrogateescape")))
    return offsets
