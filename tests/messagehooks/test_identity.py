import msgspec
from hypothesis import given
from hypothesis import strategies as st

from messagehooks.identity import chat_id, message_id, trace_id
from messagehooks.schema import LandbotMessage

TRACE = "0123456789abcdef0123456789abcdef"


def _landbot(**fields) -> LandbotMessage:
    base = {"type": "text", "timestamp": 1.5, "sender": {"id": 7, "type": "customer"}}
    return msgspec.convert({**base, **fields}, LandbotMessage)


def test_trace_id_takes_the_trace_part():
    assert trace_id(f"{TRACE}-0123456789abcdef-1") == TRACE
    assert trace_id(f"{TRACE.upper()}-0123456789abcdef") == TRACE
    assert trace_id("not-a-trace") is None
    assert trace_id(None) is None
    assert trace_id("") is None


def test_chat_id_prefers_raw_chat_over_customer_id():
    assert chat_id(_landbot(_raw={"chat": 473716610}, customer={"id": 473548616})) == "473716610"
    assert chat_id(_landbot(customer={"id": 473548616})) == "473548616"
    assert chat_id(_landbot()) is None


def test_a_null_or_empty_chat_id_does_not_count():
    assert chat_id(_landbot(_raw={"chat": None}, customer={"id": 7})) == "7"
    assert chat_id(_landbot(_raw={"chat": ""}, customer={"id": 7})) == "7"
    assert chat_id(_landbot(_raw={"chat": ""}, customer={"id": ""})) is None
    assert chat_id(_landbot(_raw={"chat": 0})) == "0"


def test_uuid_wins_then_trace_then_hash():
    with_uuid = _landbot(_raw={"chat": 1, "uuid": "u-1"})
    kwargs = {"chat": "1", "body": "hi", "payload": None}
    assert message_id(with_uuid, sentry_trace=f"{TRACE}-1", single=True, **kwargs) == "u-1"
    plain = _landbot(_raw={"chat": 1})
    assert message_id(plain, sentry_trace=f"{TRACE}-1", single=True, **kwargs) == f"trace-{TRACE}"
    # In a multi-message POST the header is shared by all messages: it cannot identify one.
    hashed = message_id(plain, sentry_trace=f"{TRACE}-1", single=False, **kwargs)
    assert hashed.startswith("hash-")
    assert hashed == message_id(plain, sentry_trace=None, single=True, **kwargs)


def test_empty_uuid_is_not_an_id():
    empty = _landbot(_raw={"chat": 1, "uuid": ""})
    assert message_id(empty, chat="1", body=None, payload=None, sentry_trace=None, single=True).startswith(
        "hash-"
    )


@given(
    body=st.text(max_size=50),
    other=st.text(max_size=50),
    ts=st.floats(min_value=0, max_value=2e9, allow_nan=False),
)
def test_hash_id_is_stable_and_separates_bodies(body, other, ts):
    message = _landbot(timestamp=ts)
    first = message_id(message, chat="9", body=body, payload=None, sentry_trace=None, single=True)
    again = message_id(message, chat="9", body=body, payload=None, sentry_trace=None, single=True)
    assert first == again
    if other != body:
        assert first != message_id(
            message, chat="9", body=other, payload=None, sentry_trace=None, single=True
        )
