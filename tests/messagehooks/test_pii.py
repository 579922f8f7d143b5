"""PII masking: real formats from several countries are masked; order numbers, dates, prices are not."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messagehooks.pii import CARD, EMAIL, PHONE, mask_optional, mask_pii


@pytest.mark.parametrize(
    "text",
    [
        "ana.lopez@example.es",
        "John.Smith+orders@mail.co.uk",
        "joao_silva99@empresa.com.br",
        "m.muller@firma-gmbh.de",
    ],
)
def test_emails_are_masked(text):
    assert mask_pii(f"write to {text} please") == f"write to {EMAIL} please"


@pytest.mark.parametrize(
    "phone",
    [
        "+34 600 11 22 33",  # Spain, mobile, international
        "+34600112233",
        "600 112 233",  # Spain, national
        "0034 600 112 233",
        "(415) 555-2671",  # US
        "415-555-2671",
        "+1 415 555 2671",
        "+44 7700 900123",  # UK
        "07700 900123",
        "+49 30 1234567",  # Germany
        "030 12345678",
        "+33 6 12 34 56 78",  # France
        "06 12 34 56 78",
        "+52 55 1234 5678",  # Mexico
        "+55 11 91234-5678",  # Brazil
        "+91 98765 43210",  # India
    ],
)
def test_phone_numbers_of_several_countries_are_masked(phone):
    assert mask_pii(f"call me at {phone} tomorrow") == f"call me at {PHONE} tomorrow"


@pytest.mark.parametrize(
    "card",
    [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "5500 0000 0000 0004",
        "3782 822463 10005",
    ],
)
def test_luhn_valid_card_numbers_are_masked(card):
    assert mask_pii(f"my card is {card}") == f"my card is {CARD}"


def test_a_sixteen_digit_number_failing_luhn_is_not_a_card():
    assert CARD not in mask_pii("my card is 4111 1111 1111 1112")


@pytest.mark.parametrize(
    "text",
    [
        "order 12345",
        "my order is #A-10023",
        "reference ORD-2024-000123",
        "code 123456",
        "on 2024-05-12",
        "on 12/05/2024",
        "on 12.05.2024",
        "at 14:30",
        "at 14:30:15",
        "it costs €1,299.99",
        "it costs $12.50",
        "1.234,56 €",
        "only 19,99",
        "since 2024",
        "ZIP 28013",
        "50% off",
    ],
)
def test_order_numbers_dates_times_prices_are_kept(text):
    assert mask_pii(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Hola, soy Ana, mi correo es ana@example.es y mi pedido el 12345 del 12/05/2024",
            f"Hola, soy Ana, mi correo es {EMAIL} y mi pedido el 12345 del 12/05/2024",
        ),
        (
            "Hi, call +1 415 555 2671 about order #A-10023, it cost $12.50 at 14:30",
            f"Hi, call {PHONE} about order #A-10023, it cost $12.50 at 14:30",
        ),
        (
            "Meine Nummer ist +49 30 1234567, Bestellung ORD-2024-000123 vom 12.05.2024",
            f"Meine Nummer ist {PHONE}, Bestellung ORD-2024-000123 vom 12.05.2024",
        ),
        (
            "Mon numéro: 06 12 34 56 78, total 1.234,56 €",
            f"Mon numéro: {PHONE}, total 1.234,56 €",
        ),
        (
            "Meu cartão 4111 1111 1111 1111 e meu email joao@empresa.com.br, CEP 28013",
            f"Meu cartão {CARD} e meu email {EMAIL}, CEP 28013",
        ),
    ],
)
def test_mixed_sentences_mask_only_the_pii(text, expected):
    assert mask_pii(text) == expected


def test_none_passes_through():
    assert mask_optional(None) is None
    assert mask_optional("a@b.io") == EMAIL


@given(st.text(max_size=200))
def test_masking_is_idempotent(text):
    once = mask_pii(text)
    assert mask_pii(once) == once


_local = st.from_regex(r"[a-z][a-z0-9._]{0,15}[a-z0-9]", fullmatch=True).filter(lambda s: ".." not in s)
_domain = st.from_regex(r"[a-z][a-z0-9]{1,10}\.(com|es|org|io|co\.uk)", fullmatch=True)


@given(
    local=_local,
    domain=_domain,
    before=st.sampled_from(["", "mail: ", "Hola "]),
    after=st.sampled_from(["", " ok", ", gracias"]),
)
def test_any_email_is_masked_and_its_address_gone(local, domain, before, after):
    masked = mask_pii(f"{before}{local}@{domain}{after}")
    assert masked == f"{before}{EMAIL}{after}"
    assert f"{local}@" not in masked


@given(
    st.text(
        alphabet=st.characters(blacklist_characters="0123456789@", blacklist_categories=("Nd",)), max_size=300
    )
)
def test_text_without_digits_or_at_sign_is_unchanged(text):
    assert mask_pii(text) == text
