"""Personal data in the surface forms customers (and adversaries) write it in, for recall tests.

Each form renders a random value of its kind (`render(rng)`) as the customer would type it. The
values are random but valid where validity is checked (Luhn cards, mod-97 IBANs, phone numbers in
ranges that phonenumbers' metadata accepts), so a miss is the detector's, not the corpus's.
Shared by benchmarks/bench_pii.py (the recall table of docs/dataset.md) and the property tests.
"""

import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from messagehooks.pii.numbers import IBAN_LENGTHS


@dataclass(frozen=True)
class Form:
    """One surface form: its name, the kind of data (the mask it should get) and a renderer."""

    name: str
    kind: str  # EMAIL, PHONE, CARD or IBAN
    render: Callable[[random.Random], str]
    wrap: tuple[str, str] = ("", "")
    """Text that goes around the value in this form (a URL's start and end)."""


def _word(rng: random.Random, low: int = 4, high: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(low, high)))


def _local(rng: random.Random) -> tuple[str, str]:
    return _word(rng), _word(rng)


def _email(rng: random.Random) -> str:
    first, last = _local(rng)
    return f"{first}.{last}@{_word(rng)}.{rng.choice(['com', 'es', 'co.uk', 'com.br', 'io'])}"


def _idn_email(rng: random.Random) -> str:
    first, last = _local(rng)
    return rng.choice(
        [
            f"{first}.pérez{last}@correo-{_word(rng)}.es",
            f"{first}@bücher{last}.de",
            f"用户{first}@例子{last}.中国",
            f"{first}{last}@почта.рф",
            f"{first}.{last}@xn--bcher-kva.de",
        ]
    )


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(count))


def _es_mobile(rng: random.Random) -> str:
    return "6" + _digits(rng, 8)


def _uk_london(rng: random.Random) -> str:
    return "207946" + _digits(rng, 4)


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + _digits(rng, length - len(prefix) - 1)
    for check in string.digits:
        total = 0
        for i, char in enumerate(reversed(body + check)):
            value = int(char) * (2 if i % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return body + check
    raise AssertionError("unreachable: one check digit always completes a Luhn number")


def _card(rng: random.Random) -> str:
    return _luhn_complete(rng.choice(["4", "51", "55", "6011"]), 16, rng)


def _group(number: str, sizes: tuple[int, ...], separators: list[str]) -> str:
    parts, at = [], 0
    for size in sizes:
        parts.append(number[at : at + size])
        at += size
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += separators[i % len(separators)] + part
    return out


def _iban(rng: random.Random, country: str | None = None) -> str:
    country = country or rng.choice(["DE", "GB", "ES", "FR", "NL", "IT", "PT"])
    length = IBAN_LENGTHS[country]
    if country in {"GB", "NL"}:
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4)) + _digits(rng, length - 8)
    elif country == "IT":
        bban = rng.choice(string.ascii_uppercase) + _digits(rng, length - 5)
    else:
        bban = _digits(rng, length - 4)
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def _grouped_iban(iban: str, separator: str = " ") -> str:
    return separator.join(iban[i : i + 4] for i in range(0, len(iban), 4))


FORMS: tuple[Form, ...] = (
    Form("email plain", "EMAIL", _email),
    Form("email IDN", "EMAIL", _idn_email),
    Form(
        "email 'john dot doe at gmail dot com'",
        "EMAIL",
        lambda r: f"{_word(r)} dot {_word(r)} at {r.choice(['gmail', _word(r)])} dot com",
    ),
    Form("email '[at]' '[dot]'", "EMAIL", lambda r: f"{_word(r)} [at] {_word(r)} [dot] com"),
    Form(
        "email %40 in a URL",
        "EMAIL",
        lambda r: _email(r).replace("@", "%40"),
        ("https://shop.example/track?e=", "&lang=es"),
    ),
    Form("email \\u0040-escaped (JSON)", "EMAIL", lambda r: _email(r).replace("@", "\\u0040")),
    Form("email zero-width space inside", "EMAIL", lambda r: _email(r).replace("@", "\u200b@\u200b")),
    Form(
        "email full-width",
        "EMAIL",
        lambda r: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in _email(r)),
    ),
    Form("email &#64; (HTML)", "EMAIL", lambda r: _email(r).replace("@", "&#64;")),
    Form("phone E.164 +34600112233", "PHONE", lambda r: "+34" + _es_mobile(r)),
    Form(
        "phone '+34 600 11 22 33'", "PHONE", lambda r: _group("+34" + _es_mobile(r), (3, 3, 2, 2, 2), [" "])
    ),
    Form("phone national '600 112 233'", "PHONE", lambda r: _group(_es_mobile(r), (3, 3, 3), [" "])),
    Form("phone '(650) 253-0000'", "PHONE", lambda r: f"(650) 253-{_digits(r, 4)}"),
    Form("phone '+44/20/7946/0959'", "PHONE", lambda r: _group("+44" + _uk_london(r), (3, 2, 4, 4), ["/"])),
    Form("phone '06.12.34.56.78'", "PHONE", lambda r: _group("06" + _digits(r, 8), (2, 2, 2, 2, 2), ["."])),
    Form("phone '0044 20 7946 0958'", "PHONE", lambda r: _group("0044" + _uk_london(r), (4, 2, 4, 4), [" "])),
    Form("phone NBSP-separated", "PHONE", lambda r: _group("+34" + _es_mobile(r), (3, 3, 3, 3), ["\u00a0"])),
    Form(
        "phone zero-width inside", "PHONE", lambda r: _group("+34" + _es_mobile(r), (3, 3, 3, 3), ["\u200b"])
    ),
    Form("phone Unicode hyphens", "PHONE", lambda r: f"650\u2010253\u2010{_digits(r, 4)}"),
    Form(
        "phone full-width digits",
        "PHONE",
        lambda r: "".join(chr(ord(c) + 0xFEE0) for c in "+34" + _es_mobile(r)),
    ),
    Form("card '4111 1111 1111 1111'", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), [" "])),
    Form("card plain", "CARD", _card),
    Form("card dashes", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), ["-"])),
    Form("card dots '4111.1111.1111.1111'", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), ["."])),
    Form("card mixed separators", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), [" ", "-", "."])),
    Form("card NBSP", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), ["\u00a0"])),
    Form("card double spaces", "CARD", lambda r: _group(_card(r), (4, 4, 4, 4), ["  "])),
    Form("card Amex 4-6-5", "CARD", lambda r: _group(_luhn_complete("37", 15, r), (4, 6, 5), [" "])),
    Form("IBAN grouped 'DE89 3704 …'", "IBAN", lambda r: _grouped_iban(_iban(r, "DE"))),
    Form("IBAN grouped 'GB82 WEST …'", "IBAN", lambda r: _grouped_iban(_iban(r, "GB"))),
    Form("IBAN ungrouped", "IBAN", _iban),
    Form("IBAN lower case, grouped", "IBAN", lambda r: _grouped_iban(_iban(r)).lower()),
    Form("IBAN NBSP-grouped", "IBAN", lambda r: _grouped_iban(_iban(r), "\u00a0")),
)

CONTEXTS: tuple[tuple[str, str], ...] = (
    ("", ""),
    ("Hola, mis datos: ", " gracias"),
    ("my details are ", "."),
    ("escríbeme a ", ", por favor"),
    ('{"note": "', '"}'),
)
"""Text around a value: no digits, no '@', nothing a detector could take for personal data."""

NOT_PII: tuple[str, ...] = (
    "order 12345",
    "#A-10023",
    "ORD-2024-000123",
    "2024-05-12",
    "2024-05-12T14:30:15Z",
    "12/05/2024",
    "12.05.2024",
    "14:30",
    "€1,299.99",
    "$12.50",
    "1.234,56 €",
    "19,99",
    "28013",
    "45%",
    "192.168.100.200",
    "4111 1111 1111 1112",
    "version 3.11.7",
    "look at example.com",
    "available at amazon.com",
    "meet me at 5 pm",
    "@ana_garcia",
    "https://example.com/orders/12345?page=2",
    "tracking 1Z999AA1",
    "DE89 is our plan code",
    "ES12 branch",
    "1/2 kg",
    "order 2024-000123 from 12/05/24",
    "price 1 299 €",
    "ref A1B2C3D4E5",
    "unix time 1715524215",
)
"""Numbers and words that look like personal data but are not (order ids, times, prices, ...)."""
