"""The recorded-delivery format (messagehooks/recorded.py): what backfill reads of a wrapper.

What replay reads of it (bodies, headers, malformed lines) is in tests/devtools/test_replay.py.
"""

import orjson
import pytest

from messagehooks.errors import MalformedLine
from messagehooks.recorded import parse_recorded
from tests.factories import landbot_body, landbot_message


def test_a_raw_topic_record_carries_hook_time_and_request_id():
    body = orjson.dumps(landbot_body(landbot_message(chat=7, uuid="u-1")))
    line = b'{"schema_version": 1, "request_id": "r-9", "hook": "h", "received_at": 12.5, '
    line += b'"headers": {"sentry-trace": "t", "x": null}, "body": ' + body + b"}\n"
    delivery = parse_recorded(line)
    assert delivery is not None
    assert delivery.body == body  # the exact bytes, not a re-encoding
    assert delivery.headers == {"sentry-trace": "t"}
    assert (delivery.hook, delivery.received_at, delivery.request_id) == ("h", 12.5, "r-9")


def test_a_bare_body_has_no_wrapper_fields():
    delivery = parse_recorded(b'  {"messages": []}\n')
    assert delivery is not None
    assert delivery.body == b'{"messages": []}'
    assert (delivery.hook, delivery.received_at, delivery.request_id) == (None, None, None)


def test_a_wrapper_field_of_the_wrong_type_is_malformed_only_when_read():
    delivery = parse_recorded(b'{"body": {}, "received_at": "noon"}')
    assert delivery is not None
    assert delivery.body == b"{}"
    with pytest.raises(MalformedLine, match="'received_at' has the wrong type"):
        _ = delivery.received_at
