"""What a reader could still find of personal data in pipeline outputs (shared by the PII tests)."""

import re
import unicodedata
from typing import Any

ID_FIELDS = {
    "pair_id",
    "conversation_id",
    "chat_id",
    "message_id",
    "prompt_message_ids",
    "response_message_ids",
    "dead_letter_id",
    "request_id",
    "sender_id",
}
"""Fields holding ids, pseudonyms included (hex digits may match a window by chance): the value's
whole digit string must not be in them."""


def plain(text: str) -> str:
    """`text` as a reader sees it: NFKC, no zero-width characters, decoded escapes, lower case."""
    text = text.replace("\\u0040", "@").replace("%40", "@").replace("&#64;", "@")
    text = unicodedata.normalize("NFKC", text)
    return "".join(c for c in text if unicodedata.category(c) != "Cf").lower()


def strings(value: Any, field: str = "") -> list[tuple[str, str]]:
    """(field, string) of every string inside a nested value, named by its top-level field."""
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings(v, field or k)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v, field)]
    return []


def strings_of(values: list[Any]) -> list[tuple[str, str]]:
    """(field, string) of every string inside `values` (rows, records)."""
    return [s for value in values for s in strings(value)]


def leaks(found: list[tuple[str, str]], secrets: list[tuple[list[str], str]]) -> list[str]:
    """Where a secret survives: one of its words, or 7 digits in a row of its number.

    `secrets`: (words, number) pairs, e.g. an e-mail's local words, or a phone's digits.
    """
    words = {word for secret_words, _ in secrets for word in secret_words}
    windows = {number[i : i + 7]: number for _, number in secrets for i in range(len(number) - 6)}
    out = []
    for field, text in found:
        seen = plain(text)
        out += [f"{field}: {word!r} in {text!r}" for word in words if word in seen]
        if field in ID_FIELDS:
            out += [f"{field}: {n} in {text!r}" for _, n in secrets if n and n in re.sub(r"\W", "", seen)]
            continue
        digits = re.sub(r"[^0-9]", "", seen)
        out += [f"{field}: digits of {n} in {text!r}" for w, n in windows.items() if w in digits]
    return out
