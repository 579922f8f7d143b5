import json

import msgspec
import pytest

from messagehooks.errors import InvalidPayload
from messagehooks.settings import Hook
from messagehooks.validation import normalize, parse_body
from tests.conftest import FIXTURES

DEV = Hook("default")


def _parse(body: bytes, hook: Hook = DEV):
    return parse_body(body, hook=hook, received_at=10.0, request_id="r1", max_messages=100)


def _one(message: dict, **kwargs):
    parsed = _parse(json.dumps({"messages": [message]}).encode(), **kwargs)
    assert not parsed.rejections, parsed.rejections
    return parsed.messages[0]


def _msg(type_: str, sender_type: str | None, data: dict, **extra) -> dict:
    message = {
        "_raw": {"chat": 42, "type": type_, "timestamp": 100.0, **extra.pop("_raw", {})},
        "type": type_,
        "data": data,
        "timestamp": 100.0,
        "customer": {"id": 4242, "country": "france"},
        "channel": {"id": 9, "name": "bot", "type": "landbot"},
        **extra,
    }
    if sender_type is not None:
        message["sender"] = {"id": 5, "name": "", "type": sender_type}
    return message


def test_docs_button_fixture_field_by_field():
    parsed = _parse((FIXTURES / "body_button_customer_docs.json").read_bytes())
    (message,) = parsed.messages
    assert (message.chat_id, message.type, message.role) == ("65363911", "button", "customer")
    assert (message.body, message.payload) == ("hi!", "$0")
    assert message.timestamp == 1606145527.9043446
    assert (message.channel_id, message.country, message.sender_id) == ("761536", "spain", "65462634")
    assert message.message_id.startswith("hash-")
    assert (message.received_at, message.request_id, message.hook) == (10.0, "r1", "default")
    original = json.loads((FIXTURES / "body_button_customer_docs.json").read_bytes())["messages"][0]
    assert msgspec.json.decode(message.raw) == original


def test_real_agent_fixture_uses_raw_chat_and_uuid():
    message = _one(json.loads((FIXTURES / "message_text_agent_real.json").read_bytes()))
    assert message.chat_id == "473716610"  # _raw.chat, not customer.id 473548616
    assert message.message_id == "f00627c8-394f-493b-b8a5-e9cd44b5c319"
    assert (message.role, message.body, message.country) == ("agent", "hello world", "United States")


def test_schema_example_fixture_with_placeholders_and_extra_keys():
    (message,) = _parse((FIXTURES / "body_text_customer_schema_example.json").read_bytes()).messages
    assert (message.chat_id, message.role, message.timestamp, message.body) == ("1", "customer", 1.0, "")
    assert message.message_id.startswith("hash-")  # uuid "" is no id


def test_uuid_less_messages_of_one_post_never_share_an_id():
    # Found by an adversarial run: ten different messages of one POST became one row.
    messages = [_msg("text", "bot", {"body": "Hi"}, _raw={"seq": i}) for i in range(10)]
    parsed = _parse(json.dumps({"messages": messages}).encode())
    assert len({m.message_id for m in parsed.messages}) == 10


def test_a_retried_uuid_less_message_keeps_its_id():
    body = json.dumps({"messages": [_msg("text", "customer", {"body": "Hi"})]}).encode()
    assert _parse(body).messages[0].message_id == _parse(body).messages[0].message_id


def test_dialog_options_from_buttons():
    data = {"body": "Pick one", "buttons": ["Yes", {"text": "No"}, {"label": "Maybe"}, 3]}
    message = _one(_msg("dialog", "bot", data))
    assert (message.role, message.options) == ("bot", ("Yes", "No", "Maybe"))


@pytest.mark.parametrize(
    ("type_", "data"),
    [("image", {"url": "https://x/y.png"}), ("iframe", {"url": "https://x/"}), ("carousel", {})],
)
def test_media_and_unknown_types_are_kept(type_, data):
    message = _one(_msg(type_, "bot", data))
    assert (message.type, message.role, message.body) == (type_, "bot", None)


@pytest.mark.parametrize(
    "where",
    [
        {"action": "assign"},
        {"_raw": {"action": "assign"}},
    ],
)
def test_event_action_at_top_level_or_raw(where):
    message = _one(_msg("event", None, {}, **where))
    assert (message.type, message.action, message.role, message.is_event) == ("event", "assign", "sys", True)


def test_event_action_in_data():
    message = _one(_msg("event", "agent", {"action": "unassign"}))
    assert (message.action, message.role) == ("unassign", "agent")


def test_sys_message_and_author_type_fallback():
    assert _one(_msg("text", "sys", {"body": "Chat closed"})).role == "sys"
    assert _one(_msg("text", None, {"body": "hey"}, _raw={"author_type": "user"})).role == "customer"
    assert _one(_msg("text", None, {"body": "hey"})).role == "unknown"


def test_body_falls_back_to_raw_message():
    assert _one(_msg("text", "bot", {}, _raw={"message": "from raw"})).body == "from raw"


def test_integer_timestamp_and_string_chat_and_extra_fields():
    message = _one(
        _msg("text", "customer", {"body": "hola", "extra": [1]}, timestamp=1700000000, _raw={"chat": "wa-1"})
    )
    assert (message.timestamp, message.chat_id) == (1700000000.0, "wa-1")
    custom = _msg("text", "customer", {"body": "x"})
    custom["customer"].update({"is_external": "True", "tags": "['a', 'b']", "phone": "+34 600"})
    assert _one(custom).body == "x"


def test_integral_floats_are_the_integers_they_are():
    """JSON (and JSON Schema's "integer", hence the OpenAPI document) does not tell 3.0 from 3."""
    message = _one(_msg("text", "customer", {"body": "x"}, _raw={"chat": 42.0, "seq": 3.0}))
    assert (message.chat_id, message.seq) == ("42", 3)
    parsed = _parse(json.dumps({"messages": [_msg("text", "bot", {}, _raw={"seq": 3.5})]}).encode())
    assert [r.field for r in parsed.rejections] == ["$._raw.seq"]


@pytest.mark.parametrize("timestamp", [-1.0, 1e20, 253_402_300_800.0])
def test_a_timestamp_without_a_utc_date_is_rejected(timestamp):
    """The dataset partitions by the event's UTC date; 1e20 s has none (the sink could not file it)."""
    parsed = _parse(json.dumps({"messages": [_msg("text", "bot", {}, timestamp=timestamp)]}).encode())
    assert [(r.reason, r.field) for r in parsed.rejections] == [("invalid_message", "$.timestamp")]


def test_customer_id_is_the_chat_fallback():
    message = _msg("text", "customer", {"body": "x"})
    del message["_raw"]
    assert _one(message).chat_id == "4242"


def test_partly_bad_batch_keeps_the_valid_messages():
    good = _msg("text", "customer", {"body": "ok"})
    bad = {"type": "text"}  # no timestamp
    wrong = _msg("text", "customer", {"body": 12})
    parsed = _parse(json.dumps({"messages": [good, bad, wrong]}).encode())
    assert [m.body for m in parsed.messages] == ["ok"]
    assert [(r.index, r.reason, r.field) for r in parsed.rejections] == [
        (1, "invalid_message", "$.timestamp"),
        (2, "invalid_message", "$.data.body"),
    ]
    assert json.loads(parsed.rejections[0].original) == bad


@pytest.mark.parametrize("key", ["body", "payload", "action"])
def test_data_text_of_the_wrong_type_is_rejected_even_when_unused(key):
    """The document promises text or null at `data.body|payload|action`; found by schemathesis:
    `data.action: 2` was accepted because a top-level `action` made it unused."""
    message = _msg("event", "customer", {"body": "x", key: 2}, action="assign")
    parsed = _parse(json.dumps({"messages": [message]}).encode())
    assert [(r.reason, r.field) for r in parsed.rejections] == [("invalid_message", f"$.data.{key}")]


def test_channel_mismatch_is_rejected():
    hook = Hook("shop", channel="761536")
    with pytest.raises(InvalidPayload, match="channel") as info:
        normalize(
            json.dumps(_msg("text", "bot", {"body": "x"})).encode(),
            hook=hook,
            received_at=0.0,
            request_id="r",
        )
    assert info.value.reason == "channel_mismatch"


@pytest.mark.parametrize(
    ("body", "reason", "status"),
    [
        (b"{not json", "malformed_json", 400),
        (b"\xff\xfe", "invalid_utf8", 400),
        (b'{"messages": 5}', "invalid_envelope", 422),
        (b"[]", "invalid_envelope", 422),
        (b'{"messages": []}', "no_messages", 422),
        (b'{"messages": [1], "messages2": NaN}', "malformed_json", 400),
        (b'{"messages": [{}, {}, {}]}', "too_many_messages", 413),
    ],
)
def test_unusable_envelopes(body, reason, status):
    with pytest.raises(InvalidPayload) as info:
        parse_body(body, hook=DEV, received_at=0, request_id="r", max_messages=2)
    assert (info.value.reason, info.value.status) == (reason, status)


def test_missing_chat_is_rejected():
    message = _msg("text", "bot", {"body": "x"})
    del message["_raw"]
    del message["customer"]
    parsed = _parse(json.dumps({"messages": [message]}).encode())
    assert [r.reason for r in parsed.rejections] == ["missing_chat"]


def test_deep_nesting_is_a_400_not_a_crash():
    deep = b"[" * 10_000 + b"]" * 10_000
    body = b'{"messages": [{"type": "text", "timestamp": 1, "data": {"x": ' + deep + b"}}]}"
    with pytest.raises(InvalidPayload, match="recursion depth") as info:
        _parse(body)
    assert (info.value.reason, info.value.status) == ("malformed_json", 400)


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        ("_raw", {"chat": "9" * 100_000}, "$._raw.chat"),  # the 100 KB chat id
        ("_raw", {"chat": 42, "uuid": "u" * 100_000}, "$._raw.uuid"),  # and 100 KB uuid
        ("_raw", {"chat": 10**40}, "$._raw.chat"),  # more digits than a 64-bit id
        ("customer", {"id": "c" * 129}, "$.customer.id"),
    ],
)
def test_an_id_over_the_bound_is_rejected_naming_the_field(where, value, field):
    message = {**_msg("text", "customer", {"body": "hi"}), where: value}
    parsed = _parse(json.dumps({"messages": [message]}).encode())
    (rejection,) = parsed.rejections
    assert (rejection.reason, rejection.field, rejection.status) == ("invalid_message", field, 422)
    assert "128" in rejection.detail or "9223372036854775807" in rejection.detail
    assert len(rejection.detail) < 200  # names the bound, does not echo the id


def test_ids_at_the_bound_are_accepted():
    message = _msg("text", "customer", {"body": "hi"}, _raw={"chat": "c" * 128, "uuid": "u" * 128})
    accepted = _one(message)
    assert (accepted.chat_id, accepted.message_id) == ("c" * 128, "u" * 128)


@pytest.mark.parametrize("spelling", [" 9500302", "9500302 ", "\t9500302\n", 9500302])
def test_a_chat_id_with_surrounding_whitespace_is_the_same_chat(spelling):
    message = _one(_msg("text", "customer", {"body": "hi"}, _raw={"chat": spelling}))
    assert message.chat_id == "9500302"


def test_a_blank_chat_id_does_not_count():
    message = _msg("text", "customer", {"body": "hi"}, _raw={"chat": "   "})
    assert _one(message).chat_id == "4242"  # customer.id, the fallback
    del message["customer"]
    (rejection,) = _parse(json.dumps({"messages": [message]}).encode()).rejections
    assert rejection.reason == "missing_chat"


def test_the_same_uuid_in_two_chats_is_two_messages_with_that_id():
    """Landbot's uuid names one message; the pipeline knows it by (chat id, uuid) (docs/ingest.md)."""
    messages = [
        _msg("text", "customer", {"body": "hi"}, _raw={"chat": chat, "uuid": "u-1"}) for chat in (1, 2)
    ]
    parsed = _parse(json.dumps({"messages": messages}).encode())
    assert [(m.chat_id, m.message_id) for m in parsed.messages] == [("1", "u-1"), ("2", "u-1")]
