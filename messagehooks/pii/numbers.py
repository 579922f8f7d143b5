"""Card, IBAN and phone detectors, run on the detection copy (messagehooks/pii/normalize.py).

The copy has one kind of space and one kind of dash, so a separator here is `` ``, ``-`` or ``.``.

- IBAN: two letters, two check digits and the country's BBAN length (ISO 13616), grouped or not,
  upper or lower case, kept only when the mod-97 checksum holds (``GB82 WEST 1234 5698 7654 32``).
- Card: 13-19 digits, unseparated or grouped 4-4-4-(1..4) / 4-6-(4..5) with any separators, mixed
  ones included (``4111.1111-1111 1111``), kept only when the first digit is 2-6 (every card
  network) and the Luhn checksum holds.
- Phone: digit groups with an optional leading ``+``/``(`` (or ``00``), joined by one separator
  (``/`` too after a ``+``: ``+44/20/7946/0959``), 9-15 digits (E.164 caps at 15; 9 is the
  shortest national number supported, e.g. Spain's ``600 112 233``; a leading ``00`` is not
  counted). Short numbers (order ids, ZIP codes, years, prices) never reach 9 digits, and a bare
  10- or 13-digit number starting with 1 is a Unix time (seconds, milliseconds), not a phone.

Every number must stand alone: one glued to a word (``ORD-2024-000123``, ``#A-10023``), to a
currency sign (``$12.50``) or followed by ``,``/``.``/``/`` plus a digit (``1.234,56``, ``12/05``)
is left as is, and dates (``2024-05-12``, ``12.05.2024``), year-numbered ids (``2024-000123``)
and dotted IPv4 addresses are skipped as one token so they never merge with a neighbouring
number. Times use ``:``, not a separator.

Known trade-offs (a false positive is cheaper than a leak): a bare 9+ digit order number, or two
numbers joined by one space holding 9-15 digits together, are masked as a phone; national numbers
shorter than 9 digits without a ``+`` (some 8-digit Nordic numbers) are not.
"""

import re
from collections.abc import Iterable

# ISO 13616 IBAN lengths by country (the SWIFT registry); a country not listed is not an IBAN.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24,
    "AE": 23,
    "AL": 28,
    "AT": 20,
    "AZ": 28,
    "BA": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "BY": 28,
    "CH": 21,
    "CR": 22,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "DO": 28,
    "EE": 20,
    "EG": 29,
    "ES": 24,
    "FI": 18,
    "FO": 18,
    "FR": 27,
    "GB": 22,
    "GE": 22,
    "GI": 23,
    "GL": 18,
    "GR": 27,
    "GT": 28,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IQ": 23,
    "IS": 26,
    "IT": 27,
    "JO": 30,
    "KW": 30,
    "KZ": 20,
    "LB": 28,
    "LC": 32,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MD": 24,
    "ME": 22,
    "MK": 19,
    "MR": 27,
    "MT": 31,
    "MU": 30,
    "NL": 18,
    "NO": 15,
    "PK": 24,
    "PL": 28,
    "PS": 29,
    "PT": 25,
    "QA": 29,
    "RO": 24,
    "RS": 22,
    "SA": 24,
    "SC": 31,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "ST": 25,
    "SV": 28,
    "TL": 23,
    "TN": 24,
    "TR": 26,
    "UA": 29,
    "VA": 22,
    "VG": 24,
    "XK": 20,
}  # fmt: skip  (nine countries a line: one a line would be 76 lines of lookup table)

# A number or an IBAN needs 9+ digits and separators in a row, or a country code and two digits;
# most chat messages have neither, and then no costly regex runs at all.
_MAYBE_NUMBER = re.compile(r"[0-9][0-9 .()/\-]{8}")
_MAYBE_IBAN = re.compile(r"(?<![^\W\d_])[A-Za-z]{2}[0-9]{2}")


def start(masks: Iterable[str]) -> str:
    """Where a number may start: not glued to a word, a currency sign, ``+``, ``#`` or a mask.

    A mask counts as a word so that masking twice sees the same boundaries (idempotence).
    """
    return "".join(
        [r"(?<![\w#$€£¥+])(?<!\w[-.,/])"]
        + [rf"(?<!{re.escape(mask)})(?<!{re.escape(mask)}[-.,/])" for mask in masks]
    )


# ... and where it ends: not before a word, `+`, `(`, nor `,5` / `.5` / `/5` / `-5` (prices, dates).
_END = r"(?![\w+(])(?![-.,/][\w+(])"
_S = r"[ .\-]"  # a card's separator: any, mixed


def card_pattern(masks: Iterable[str]) -> re.Pattern[str]:
    """Card-shaped runs (checked with `luhn` before masking)."""
    return re.compile(
        r"(?=[0-9]{4})"  # cheap filter first: every card form starts with 4 digits
        + start(masks)
        + rf"(?:[0-9]{{13,19}}|[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{{1,4}}"
        + rf"|[0-9]{{4}}{_S}[0-9]{{6}}{_S}[0-9]{{4,5}})"
        + _END
    )


_SEP = r"(?:[ .\-]\(?|\)[ .\-]?|\()"


def phone_pattern(masks: Iterable[str]) -> re.Pattern[str]:
    """Phone-shaped runs, dates and IPv4 addresses (`phone_digits` tells them apart)."""
    return re.compile(
        r"(?=[0-9(+])"  # cheap first-char filter before the lookbehinds
        + start(masks)
        + r"(?:(?P<keep>"
        + r"[0-9]{4}(?P<d1>[-./])[0-9]{1,2}(?P=d1)[0-9]{1,2}"  # 2024-05-12
        + r"|[0-9]{1,2}(?P<d2>[-./])[0-9]{1,2}(?P=d2)[0-9]{2,4}"  # 12.05.2024, 12/05/24
        + r"|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"  # 192.168.10.200
        + r"|(?:19|20)[0-9]{2}-[0-9]{4,8}(?![0-9])"  # ORD 2024-000123: a year-numbered id
        + r")|(?P<num>\+[0-9]{1,3}(?:/[0-9]++){2,}+"  # +44/20/7946/0959
        + r"|(?:\+|\(\+?)?[0-9]++(?:"
        + _SEP
        + r"[0-9]++)*+))"
        + _END
    )


# A bare Unix time in seconds or milliseconds (2001-2033): no phone plan gives 10 or 13 digits
# starting with 1 to a subscriber (North America's area codes and India's mobiles start with 2-9).
_EPOCH = re.compile(r"1[0-9]{9}(?:[0-9]{3})?")


def luhn(digits: str) -> bool:
    """The Luhn checksum, which every payment card number satisfies and 9 in 10 random numbers do not."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card(run: str) -> bool:
    """Whether a card-shaped run is a card number: issuer digit 2-6 (every network) and Luhn."""
    return "2" <= run[0] <= "6" and luhn(re.sub(r"[^0-9]", "", run))


def phone_digits(match: re.Match[str]) -> bool:
    """Whether a `phone_pattern` match is a phone: not a date or an IP, 9-15 digits."""
    run = match.group("num")
    if run is None:  # a date or an IP: kept whole so it does not merge with a neighbour
        return False
    if _EPOCH.fullmatch(run):
        return False
    count = sum(map(str.isdigit, run)) - (2 if run.startswith("00") else 0)
    return 9 <= count <= 15


def maybe_number(text: str) -> bool:
    """A quick test that `text` may hold a card or a phone (most texts do not)."""
    return _MAYBE_NUMBER.search(text) is not None


def iban_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the IBANs in `text`: right country length, mod-97 checksum, any grouping."""
    spans: list[tuple[int, int]] = []
    for candidate in _MAYBE_IBAN.finditer(text):
        begin = candidate.start()
        if spans and begin < spans[-1][1]:
            continue
        length = IBAN_LENGTHS.get(text[begin : begin + 2].upper())
        if length is None:
            continue
        end = _iban_end(text, begin, length)
        if end is not None and _mod97(re.sub(r"[^0-9A-Za-z]", "", text[begin:end]).upper()):
            spans.append((begin, end))
    return spans


def _iban_end(text: str, begin: int, length: int) -> int | None:
    """Where `length` letters and digits end from `begin`, one space or dash allowed between any two."""
    count = 0
    position = begin
    while count < length:
        if position < len(text) and text[position].isascii() and text[position].isalnum():
            count += 1
            position += 1
        elif 0 < count < length and position + 1 < len(text) and text[position] in " -":
            position += 1
            if not (text[position].isascii() and text[position].isalnum()):
                return None
        else:
            return None
    if position < len(text) and text[position].isalnum():
        return None  # glued to more letters or digits: not this IBAN
    return position


def _mod97(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1
