import json
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from ingest.app import create_app
from ingest.publisher import InMemoryPublisher
from messagehooks.settings import load_settings
from tests.conftest import FIXTURES

TOKEN = "tok-9f8e7d6c5b4a"
HOOKS = json.dumps([{"name": "docs", "channel": 761536, "tokens": ["tok-old-1234", TOKEN]}])
AUTH = {"Authorization": f"Token {TOKEN}"}
BUTTON_BODY = (FIXTURES / "body_button_customer_docs.json").read_bytes()


def _client(**env: str) -> tuple[TestClient, InMemoryPublisher]:
    publisher = InMemoryPublisher()
    settings = load_settings({"MESSAGEHOOKS_HOOKS": HOOKS, **env})
    return TestClient(create_app(settings, publisher), raise_server_exceptions=False), publisher


@pytest.fixture
def client():
    client, publisher = _client()
    with client:
        client.publisher = publisher
        yield client


def _topics(publisher: InMemoryPublisher) -> list[str]:
    return [r.topic for r in publisher.records]


def test_accepted_message_goes_to_raw_and_messages(client):
    response = client.post("/hooks/docs", content=BUTTON_BODY, headers={**AUTH, "sentry-trace": "x"})
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 0)
    assert response.headers["content-type"] == "application/json"
    assert _topics(client.publisher) == ["landbot.raw", "landbot.messages"]
    raw, message = client.publisher.records
    assert raw.key == message.key  # the chat id: a chat's deliveries stay in one partition
    raw_value = json.loads(raw.value)
    assert raw_value["body"] == json.loads(BUTTON_BODY)
    assert raw_value["request_id"] == body["request_id"]
    assert raw_value["headers"] == {"sentry-trace": "x", "user-agent": "testclient"}
    assert message.key == b"65363911"
    assert json.loads(message.value)["request_id"] == body["request_id"]


def test_a_request_of_several_chats_is_one_raw_record_keyed_by_its_first_accepted_chat(client):
    def text(chat: int | None, uuid: str) -> dict[str, object]:
        return {
            "type": "text",
            "timestamp": 1,
            "data": {"body": "x"},
            "channel": {"id": 761536},
            "_raw": {"chat": chat, "uuid": uuid},
        }

    messages = [
        {"timestamp": 1, "channel": {"id": 761536}, "_raw": {"chat": 5}},
        text(7, "a"),
        text(8, "b"),
        text(7, "c"),
    ]
    response = client.post("/hooks/docs", content=json.dumps({"messages": messages}), headers=AUTH)
    assert (response.json()["accepted"], response.json()["rejected"]) == (3, 1)
    raws = [r for r in client.publisher.records if r.topic == "landbot.raw"]
    assert [r.key for r in raws] == [b"7"]  # chat 5's message was rejected: 7 is the first accepted
    assert json.loads(raws[0].value)["body"] == {"messages": messages}  # whole, never split
    keys = [r.key for r in client.publisher.records if r.topic == "landbot.messages"]
    assert keys == [b"7", b"8", b"7"]


def test_bearer_token_and_rotation_token_work():
    client, _ = _client()
    with client:
        for header in ("Bearer tok-old-1234", f"token {TOKEN}"):
            assert (
                client.post("/hooks/docs", content=BUTTON_BODY, headers={"Authorization": header}).status_code
                == 200
            )


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Token wrong"}, {"Authorization": TOKEN}])
def test_unauthenticated_is_401_and_not_stored(client, headers):
    response = client.post("/hooks/docs", content=BUTTON_BODY, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert client.publisher.records == []
    assert "messagehooks_unauthorized_total 1.0" in client.get("/metrics").text


def test_an_open_hook_accepts_without_a_token_and_says_so_at_start(caplog):
    hooks = json.dumps([{"name": "docs", "token": TOKEN}, {"name": "demo", "open": True}])
    caplog.set_level(logging.WARNING)
    with _client(MESSAGEHOOKS_HOOKS=hooks)[0] as client:
        assert client.post("/hooks/demo", content=BUTTON_BODY).status_code == 200
        assert client.post("/hooks/docs", content=BUTTON_BODY).status_code == 401
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["""hook 'demo' is open ("open": true): it accepts any request without a token"""]


def test_unknown_hook_is_404(client):
    response = client.post("/hooks/nope", content=BUTTON_BODY, headers=AUTH)
    assert (response.status_code, response.json()["error"]) == (404, "unknown_hook")
    assert client.publisher.records == []


def test_wrong_method_is_a_json_405(client):
    response = client.get("/hooks/docs")
    assert response.status_code == 405
    assert response.json()["error"] == "http_error"


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{nope", 400, "malformed_json"),
        (b"\xff\x00", 400, "invalid_utf8"),
        (b'{"messages": {}}', 422, "invalid_envelope"),
        (b'{"messages": []}', 422, "no_messages"),
        (b'{"messages": [{"type": "text"}]}', 422, "invalid_message"),
        (
            b'{"messages": [{"type": "text", "timestamp": 1, "channel": {"id": 5}, "_raw": {"chat": 1}}]}',
            422,
            "channel_mismatch",
        ),
    ],
)
def test_invalid_payload_is_4xx_and_dead_lettered(client, body, status, reason):
    response = client.post("/hooks/docs", content=body, headers=AUTH)
    assert response.status_code == status
    answer = response.json()
    assert answer["error"] == reason
    assert answer["detail"]
    assert (answer["accepted"], answer["rejected"]) == (0, 1)
    assert _topics(client.publisher) == ["landbot.dead-letter"]
    record = json.loads(client.publisher.records[0].value)
    assert record["reason"] == reason
    assert record["request_id"] == answer["request_id"]
    if record["original_encoding"] == "utf-8":
        assert record["original"].encode() in body
    else:
        assert record["original_encoding"] == "base64"
    assert f'messagehooks_dead_letters_total{{reason="{reason}"}} 1.0' in client.get("/metrics").text


def test_reject_with_202_setting_still_dead_letters():
    client, publisher = _client(MESSAGEHOOKS_REJECT_WITH_202="true")
    with client:
        response = client.post("/hooks/docs", content=b'{"messages": []}', headers=AUTH)
    assert response.status_code == 202
    assert response.json()["error"] == "no_messages"
    assert _topics(publisher) == ["landbot.dead-letter"]


def test_partly_bad_batch_is_200_with_errors(client):
    good = json.loads(BUTTON_BODY)["messages"][0]
    body = json.dumps({"messages": [good, {"type": 5, "timestamp": 1}]}).encode()
    response = client.post("/hooks/docs", content=body, headers=AUTH)
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["errors"][0]["index"] == 1
    assert _topics(client.publisher) == ["landbot.raw", "landbot.messages", "landbot.dead-letter"]


def test_body_over_the_limit_is_413():
    client, publisher = _client(MESSAGEHOOKS_MAX_BODY_BYTES="100")
    with client:
        response = client.post("/hooks/docs", content=BUTTON_BODY, headers=AUTH)
    assert (response.status_code, response.json()["error"]) == (413, "body_too_large")
    assert _topics(publisher) == ["landbot.dead-letter"]


def test_events_also_go_to_the_events_topic(client):
    event = {
        "type": "event",
        "timestamp": 2,
        "action": "assign",
        "_raw": {"chat": 1},
        "channel": {"id": 761536},
    }
    response = client.post("/hooks/docs", content=json.dumps({"messages": [event]}), headers=AUTH)
    assert response.status_code == 200
    assert _topics(client.publisher) == ["landbot.raw", "landbot.messages", "landbot.events"]


def test_a_retry_is_counted_as_a_duplicate_with_the_same_id(client):
    headers = {**AUTH, "sentry-trace": "0123456789abcdef0123456789abcdef-0123456789abcdef-1"}
    for _ in range(2):
        assert client.post("/hooks/docs", content=BUTTON_BODY, headers=headers).status_code == 200
    ids = {
        json.loads(r.value)["message_id"] for r in client.publisher.records if r.topic == "landbot.messages"
    }
    assert len(ids) == 1
    assert ids.pop().startswith("hash-")
    assert "messagehooks_duplicates_seen_total 1.0" in client.get("/metrics").text


def test_the_same_uuid_in_two_chats_is_no_duplicate(client):
    body = json.loads(BUTTON_BODY)
    for chat in (1, 2, 2):
        body["messages"][0]["_raw"].update(chat=chat, uuid="u")
        assert client.post("/hooks/docs", content=json.dumps(body), headers=AUTH).status_code == 200
    assert "messagehooks_duplicates_seen_total 1.0" in client.get("/metrics").text  # chat 2's retry only


def test_one_trace_on_different_messages_gives_different_ids(client):
    # Found by an adversarial run: five bodies, one trace id, five span ids -> one row (4 lost).
    ids = set()
    for span in range(5):
        body = BUTTON_BODY.replace(b'"hi!"', f'"hi {span}!"'.encode())
        trace = f"0123456789abcdef0123456789abcdef-{span:016x}-1"
        assert (
            client.post("/hooks/docs", content=body, headers={**AUTH, "sentry-trace": trace}).status_code
            == 200
        )
    for record in client.publisher.records:
        if record.topic == "landbot.messages":
            ids.add(json.loads(record.value)["message_id"])
    assert len(ids) == 5


def test_operational_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/hooks/docs", content=BUTTON_BODY, headers=AUTH)
    metrics = client.get("/metrics").text
    assert 'messagehooks_requests_total{hook="docs",status="200"} 1.0' in metrics
    assert 'messagehooks_messages_total{sender="customer",type="button"} 1.0' in metrics
    document = client.get("/openapi.json").json()
    responses = document["paths"]["/hooks/{hook}"]["post"]["responses"]
    assert {"200", "202", "400", "401", "404", "413", "422"} <= set(responses)


README = FIXTURES.parents[2] / "README.md"
_CURL = re.compile(
    r"curl -X POST http://127\.0\.0\.1:8000/hooks/(?P<hook>\w+) \\\n"
    r"\s+-H 'Content-Type: application/json' -H 'Authorization: (?P<auth>[^']+)' \\\n"
    r"\s+--data @(?P<file>\S+)"
)


def test_readme_curl_examples_work():
    """Each curl example of the README, replayed with the hooks the README configures."""
    text = README.read_text()
    examples = list(_CURL.finditer(text))
    assert [m["hook"] for m in examples] == ["default", "shop"]
    hooks = re.search(r"export MESSAGEHOOKS_HOOKS='([^']+)'", text)
    assert hooks is not None
    for example, env in zip(examples, ("", hooks.group(1)), strict=True):
        publisher = InMemoryPublisher()
        app = create_app(load_settings({"MESSAGEHOOKS_HOOKS": env}), publisher)
        body = (README.parent / example["file"]).read_bytes()
        with TestClient(app) as client:
            response = client.post(
                f"/hooks/{example['hook']}", content=body, headers={"Authorization": example["auth"]}
            )
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 1
        assert _topics(publisher) == ["landbot.raw", "landbot.messages"]


def test_tokens_and_text_never_reach_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret_text = "my email is someone@example.com"
    message = json.loads(BUTTON_BODY)["messages"][0]
    message["data"]["body"] = secret_text
    bad = {
        "type": "text",
        "timestamp": 1,
        "data": {"body": secret_text},
        "channel": {"id": 1},
        "_raw": {"chat": 1},
    }
    for headers in (AUTH, {"Authorization": "Token tok-wrong-555"}):
        client.post("/hooks/docs", content=json.dumps({"messages": [message, bad]}), headers=headers)
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "dead-lettered" in logged
    for secret in (TOKEN, "tok-old-1234", "tok-wrong-555", secret_text):
        assert secret not in logged
    assert TOKEN not in client.get("/metrics").text


_hook_names = st.one_of(
    st.sampled_from(["docs", "..", "%2e%2e", "docs%0d%0aX: y", "a" * 300]), st.text(max_size=40)
)
_headers = st.dictionaries(
    st.sampled_from(["Authorization", "sentry-trace", "Content-Type", "Content-Length-X"]),
    st.one_of(
        st.just(f"Token {TOKEN}"),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
    ),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_bodies = st.one_of(
    st.binary(max_size=200),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(_json_values, max_size=3).map(lambda ms: json.dumps({"messages": ms}).encode()),
    st.fixed_dictionaries(
        {
            "type": st.text(max_size=10),
            "timestamp": st.one_of(st.floats(allow_nan=False), st.text()),
            "data": _json_values,
        }
    ).map(lambda m: json.dumps({"messages": [m]}).encode()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hook=_hook_names, headers=_headers, body=_bodies)
def test_no_input_yields_a_5xx(client, hook, headers, body):
    from urllib.parse import quote

    response = client.post(f"/hooks/{quote(hook, safe='')}", content=body, headers=headers)
    assert response.status_code < 500, response.text
    assert isinstance(response.json(), dict)


def test_readyz_follows_the_sinks_health_when_told_to(tmp_path):
    from messagehooks.health import SinkHealth, write_health

    client, _ = _client(MESSAGEHOOKS_DATA_DIR=str(tmp_path), MESSAGEHOOKS_READY_NEEDS_SINK="1")
    health = tmp_path / "health" / "sink.json"
    with client:
        silent = client.get("/readyz")
        assert silent.status_code == 503
        assert silent.json()["error"] == "sink_unhealthy"
        assert "has not reported yet" in silent.json()["detail"]
        write_health(health, SinkHealth(False, "Delta commits fail: OSError: No space left on device", 1.0))
        failing = client.get("/readyz")
        assert failing.status_code == 503
        assert "No space left on device" in failing.json()["detail"]
        write_health(health, SinkHealth(True, "Delta commits succeed", 2.0))
        assert client.get("/readyz").status_code == 200


def test_readyz_ignores_the_sink_unless_told_to(tmp_path):
    client, _ = _client(MESSAGEHOOKS_DATA_DIR=str(tmp_path))
    with client:
        assert client.get("/readyz").status_code == 200
