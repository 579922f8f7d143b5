"""Text-derived features of a turn: lengths and content flags."""

import re

_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.IGNORECASE)


def char_count(text: str) -> int:
    """Number of characters (code points) of `text`."""
    return len(text)


def word_count(text: str) -> int:
    """Number of whitespace-separated words of `text`."""
    return len(text.split())


def has_question(text: str) -> bool:
    """Whether `text` contains a question mark (ASCII, Spanish opening or full-width)."""
    # ASCII, Spanish opening mark, full-width (CJK); `in` chains are the fast path here.
    return "?" in text or "\u00bf" in text or "\uff1f" in text


def has_digits(text: str) -> bool:
    """Whether `text` contains a decimal digit (any script)."""
    return _DIGIT.search(text) is not None


def has_email(text: str) -> bool:
    """Whether `text` contains something shaped like an e-mail address."""
    return "@" in text and _EMAIL.search(text) is not None


def has_url(text: str) -> bool:
    """Whether `text` contains an ``http(s)://`` or ``www.`` URL."""
    lowered = text.lower()
    if "://" not in lowered and "www." not in lowered:  # cheap pre-check: most texts have none
        return False
    return _URL.search(text) is not None
