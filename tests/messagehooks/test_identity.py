import json

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from messagehooks.identity import chat_id, message_id
from messagehooks.schema import LandbotMessage


def _landbot(**fields) -> LandbotMessage:
    base = {"type": "text", "timestamp": 1.5, "sender": {"id": 7, "type": "customer"}}
    return msgspec.convert({**base, **fields}, LandbotMessage)


def test_chat_id_prefers_raw_chat_over_customer_id():
    assert chat_id(_landbot(_raw={"chat": 473716610}, customer={"id": 473548616})) == "473716610"
    assert chat_id(_landbot(customer={"id": 473548616})) == "473548616"
    assert chat_id(_landbot()) is None


def test_a_null_or_empty_chat_id_does_not_count():
    assert chat_id(_landbot(_raw={"chat": None}, customer={"id": 7})) == "7"
    assert chat_id(_landbot(_raw={"chat": ""}, customer={"id": 7})) == "7"
    assert chat_id(_landbot(_raw={"chat": ""}, customer={"id": ""})) is None
    assert chat_id(_landbot(_raw={"chat": 0})) == "0"


def test_uuid_wins_then_a_hash_of_the_message():
    kwargs = {"chat": "1", "body": "hi", "payload": None, "original": b"{}"}
    assert message_id(_landbot(_raw={"chat": 1, "uuid": "u-1"}), **kwargs) == "u-1"
    assert message_id(_landbot(_raw={"chat": 1}), **kwargs).startswith("hash-")


@pytest.mark.parametrize("uuid", ["", "   ", "\t"])
def test_empty_or_blank_uuid_is_not_an_id(uuid):
    empty = _landbot(_raw={"chat": 1, "uuid": uuid})
    assert message_id(empty, chat="1", body=None, payload=None, original=b"{}").startswith("hash-")


def test_a_chat_id_loses_its_surrounding_whitespace_only():
    assert chat_id(_landbot(_raw={"chat": " 9500302"})) == "9500302"
    assert chat_id(_landbot(_raw={"chat": "\u00a09500302 "})) == "9500302"  # a no-break space too
    assert chat_id(_landbot(_raw={"chat": "95 00302"})) == "95 00302"  # inside: kept
    assert chat_id(_landbot(_raw={"chat": " "}, customer={"id": 7})) == "7"  # blank: none


@given(
    body=st.text(max_size=50),
    other=st.text(max_size=50),
    ts=st.floats(min_value=0, max_value=2e9, allow_nan=False),
)
def test_hash_id_is_stable_and_separates_bodies(body, other, ts):
    message = _landbot(timestamp=ts)
    first = message_id(message, chat="9", body=body, payload=None, original=b"{}")
    assert first == message_id(message, chat="9", body=body, payload=None, original=b"{}")
    if other != body:
        assert first != message_id(message, chat="9", body=other, payload=None, original=b"{}")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(original=st.dictionaries(st.text(max_size=5), json_values, max_size=5), other=json_values)
def test_messages_differing_in_any_value_never_share_an_id(original, other):
    # Fields the normalized message drops (buttons, a customer field) still tell two messages apart.
    message = _landbot()
    changed = {**original, "extra": other}
    first = message_id(message, chat="9", body="b", payload=None, original=msgspec.json.encode(original))
    second = message_id(message, chat="9", body="b", payload=None, original=msgspec.json.encode(changed))
    canonical = [msgspec.json.encode(value, order="sorted") for value in (original, changed)]
    assert (first == second) == (canonical[0] == canonical[1])


@given(original=st.dictionaries(st.text(max_size=5), json_values, max_size=5))
def test_the_id_does_not_depend_on_how_the_json_was_written(original):
    # The backfill re-encodes bodies read from the `raw` topic: spacing and key order change.
    spaced = json.dumps(dict(reversed(original.items())), indent=2).encode()
    kwargs = {"chat": "9", "body": "b", "payload": None}
    assert message_id(_landbot(), original=msgspec.json.encode(original), **kwargs) == message_id(
        _landbot(), original=spaced, **kwargs
    )
