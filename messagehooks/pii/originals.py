r"""Masking of JSON-ish text and of dead-letter originals (text, or base64 of bytes that are not UTF-8).

A rejected payload is often not valid JSON, so customer fields are found by their key in the text
itself (``"name": "Ana"``, also escaped once, ``\"name\": \"Ana\"``), not by parsing; their values
become ``<PERSONAL>`` whatever they hold, and the rest goes through `mask_pii`. A base64 original
is decoded, masked as text with every undecodable byte kept as is (``surrogateescape``), and
encoded back, so an e-mail inside Latin-1 or broken UTF-8 bytes is found too.
"""

import base64
import binascii
import re

from messagehooks.pii.mask import mask_pii

PERSONAL = "<PERSONAL>"

PERSONAL_KEYS = (
    "name first_name last_name full_name firstname lastname surname nickname username "
    "email e_mail mail phone phone_number telephone mobile whatsapp "
    "address street city zip zipcode postal_code postcode birthdate birthday date_of_birth "
    "dni nif nie ssn passport tax_id iban card card_number"
).split()
"""Keys whose values are customer data whatever they look like (Landbot's `customer` fields)."""

_KEYED = re.compile(
    r'(?P<key>\\?"(?:' + "|".join(PERSONAL_KEYS) + r')\\?"\s*:\s*)'
    r'(?P<value>\\?"(?:[^"\\]|\\[^"])*\\?"|-?[0-9][0-9.eE+\-]*)',
    re.IGNORECASE,
)


def mask_json_text(text: str) -> str:
    """`mask_pii` of a JSON-ish text, with the values of customer fields replaced whole."""
    if '"' in text:
        text = _KEYED.sub(_personal, text)
    return mask_pii(text)


def _personal(match: re.Match[str]) -> str:
    quote = '\\"' if match.group("value").startswith("\\") else '"'
    return f"{match.group('key')}{quote}{PERSONAL}{quote}"


def mask_original(original: str, encoding: str | None) -> str:
    """A dead letter's `original` with its personal data masked, in the same encoding."""
    if encoding != "base64":
        return mask_json_text(original)
    try:
        raw = base64.b64decode(original, validate=True)
    except (binascii.Error, ValueError):
        return mask_json_text(original)
    text = raw.decode("utf-8", "surrogateescape")
    masked = mask_json_text(text)
    if masked == text:
        return original
    return base64.b64encode(masked.encode("utf-8", "surrogateescape")).decode()
