"""Security of the ingest: constant-time token checks, rotation, limits, no secrets in logs,
metrics, --help or config errors. Unit level (TestClient + InMemoryPublisher), no broker.

Already covered elsewhere and not repeated here: the 429 answer itself and per-hook buckets
(tests/ingest/test_limits.py), the 408 request timeout (test_limits.py and the slow client of
test_hostile_input.py), 401/404 basics (tests/ingest/test_routes.py, test_auth.py).
"""

import hashlib
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.datastructures import Secret
from starlette.testclient import TestClient

import ingest.auth
from cli import main as cli
from ingest.app import create_app
from ingest.auth import authenticate
from ingest.publisher import InMemoryPublisher
from messagehooks.errors import ConfigError, Unauthorized
from messagehooks.logging import JsonFormatter
from messagehooks.settings import Hook, load_settings
from tests.conftest import FIXTURES

TOKEN = "tok-sec-4b1d8e2f9a7c"
OLD_TOKEN = "tok-sec-old-0f3e6a"
HOOKS = json.dumps([{"name": "shop", "tokens": [OLD_TOKEN, TOKEN]}])
AUTH = {"Authorization": f"Token {TOKEN}"}
BODY = (FIXTURES / "body_button_customer_docs.json").read_bytes()
SECRET_TEXT = "zebra-quartz my card is 4111 1111 1111 1111"


def _client(hooks: str = HOOKS, **env: str) -> tuple[TestClient, InMemoryPublisher]:
    publisher = InMemoryPublisher()
    settings = load_settings({"MESSAGEHOOKS_HOOKS": hooks, **env})
    return TestClient(create_app(settings, publisher), raise_server_exceptions=False), publisher


def _message(**changes: object) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(BODY)["messages"][0]
    message.update(changes)
    return message


def _body(*messages: dict[str, Any]) -> bytes:
    return json.dumps({"messages": list(messages)}).encode()


# -- constant-time token check ---------------------------------------------------------------


class CountingCompare:
    """Stands in for `hmac` in ingest.auth's namespace; records every compare_digest call."""

    def __init__(self) -> None:
        import hmac

        self._real = hmac.compare_digest
        self.calls: list[tuple[bytes, bytes]] = []

    def compare_digest(self, a: bytes, b: bytes) -> bool:
        self.calls.append((a, b))
        return self._real(a, b)


HOOK = Hook("shop", tokens=(Secret(OLD_TOKEN), Secret(TOKEN)))
WRONG_TOKENS = {
    "missing-by-one": TOKEN[:-1],
    "one-too-many": TOKEN + "x",
    "empty": "",
    "one-char": "x",
    "10000-chars": "x" * 10_000,
    "same-length-wrong": "X" * len(TOKEN),
    "right-prefix-wrong-last": TOKEN[:-1] + ("0" if TOKEN[-1] != "0" else "1"),
    "non-ascii": "ü" * len(TOKEN),
    "lone-surrogate": "\udcff" * 3,
}


def _check(monkeypatch: pytest.MonkeyPatch, header: str | None) -> tuple[bool, list[tuple[bytes, bytes]]]:
    counter = CountingCompare()
    monkeypatch.setattr(ingest.auth, "hmac", SimpleNamespace(compare_digest=counter.compare_digest))
    try:
        authenticate(HOOK, header)
    except Unauthorized:
        return False, counter.calls
    return True, counter.calls


@pytest.mark.parametrize("name", list(WRONG_TOKENS))
def test_every_wrong_token_takes_the_same_comparison_path(monkeypatch, name):
    accepted, calls = _check(monkeypatch, f"Token {WRONG_TOKENS[name]}")
    _, right_calls = _check(monkeypatch, f"Token {TOKEN}")
    assert not accepted
    # Same number of comparisons as for the right token: every configured token, no early exit.
    assert len(calls) == len(right_calls) == len(HOOK.tokens)
    for given, expected in calls:
        assert len(given) == len(expected) == 32  # SHA-256 digests: the token's length never shows
    expected_digests = [hashlib.sha256(str(t).encode()).digest() for t in HOOK.tokens]
    assert [e for _, e in calls] == expected_digests
    presented = WRONG_TOKENS[name].strip() or ""
    digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
    assert {g for g, _ in calls} == {digest}


@pytest.mark.parametrize("header", [None, "", "Token", "Basic abc", "Bearer ", "Token " + " " * 50])
def test_a_missing_token_is_compared_too(monkeypatch, header):
    """No token at all still runs every comparison (on the digest of the empty string)."""
    accepted, calls = _check(monkeypatch, header)
    assert not accepted
    assert len(calls) == len(HOOK.tokens)
    assert {g for g, _ in calls} == {hashlib.sha256(b"").digest()}


def test_the_matching_token_position_does_not_change_the_path(monkeypatch):
    """Old (first) and new (last) token: both accepted after comparing every token."""
    for token in (OLD_TOKEN, TOKEN):
        accepted, calls = _check(monkeypatch, f"Bearer {token}")
        assert accepted
        assert len(calls) == len(HOOK.tokens)


def test_comparison_is_not_plain_equality(monkeypatch):
    """If compare_digest were bypassed (== on strings), the counter would see no call."""
    counter = CountingCompare()
    monkeypatch.setattr(ingest.auth, "hmac", SimpleNamespace(compare_digest=counter.compare_digest))
    authenticate(HOOK, f"Token {TOKEN}")
    assert counter.calls


# -- rotation --------------------------------------------------------------------------------


def test_rotation_old_and_new_accepted_then_the_removed_one_refused():
    client, _ = _client()
    with client:
        for token in (OLD_TOKEN, TOKEN):
            response = client.post("/hooks/shop", content=BODY, headers={"Authorization": f"Token {token}"})
            assert response.status_code == 200, response.text
    rotated, rotated_publisher = _client(json.dumps([{"name": "shop", "tokens": [TOKEN]}]))
    with rotated:
        removed = rotated.post("/hooks/shop", content=BODY, headers={"Authorization": f"Token {OLD_TOKEN}"})
        kept = rotated.post("/hooks/shop", content=BODY, headers=AUTH)
    assert removed.status_code == 401
    assert removed.json()["error"] == "unauthorized"
    assert OLD_TOKEN not in removed.text
    assert kept.status_code == 200
    assert len(rotated_publisher.records) == 2  # only the kept token's request: raw + messages


def test_a_token_of_another_hook_is_refused():
    hooks = json.dumps([{"name": "shop", "token": TOKEN}, {"name": "blog", "token": OLD_TOKEN}])
    client, publisher = _client(hooks)
    with client:
        response = client.post("/hooks/shop", content=BODY, headers={"Authorization": f"Token {OLD_TOKEN}"})
    assert response.status_code == 401
    assert publisher.records == []


# -- rate limit: what test_limits.py does not cover ------------------------------------------


def test_rejected_requests_do_not_spend_the_hooks_rate_budget():
    """401 and 404 floods are answered before the limiter: the hook keeps its budget."""
    client, _ = _client(MESSAGEHOOKS_RATE_LIMIT="2")
    with client:
        flood = [
            client.post("/hooks/shop", content=BODY, headers={"Authorization": "Token no"}) for _ in range(10)
        ]
        unknown = [client.post("/hooks/other", content=BODY, headers=AUTH) for _ in range(10)]
        legit = [client.post("/hooks/shop", content=BODY, headers=AUTH) for _ in range(3)]
    assert {r.status_code for r in flood} == {401}
    assert {r.status_code for r in unknown} == {404}
    assert [r.status_code for r in legit] == [200, 200, 429]


def test_429_comes_before_the_body_is_read_and_stores_nothing():
    client, publisher = _client(MESSAGEHOOKS_RATE_LIMIT="1", MESSAGEHOOKS_MAX_BODY_BYTES="1000")
    with client:
        assert client.post("/hooks/shop", content=BODY, headers=AUTH).status_code == 200
        stored = len(publisher.records)
        limited = client.post("/hooks/shop", content=b"x" * 5000, headers=AUTH)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert len(publisher.records) == stored  # not even a dead letter


# -- body size and messages per request (413 JSON) -------------------------------------------


def _limits_client() -> tuple[TestClient, InMemoryPublisher]:
    return _client(MESSAGEHOOKS_MAX_BODY_BYTES="4000", MESSAGEHOOKS_MAX_MESSAGES_PER_REQUEST="3")


def _sized(size: int) -> bytes:
    base = _body(_message(data={"body": ""}))
    body = _body(_message(data={"body": "x" * (size - len(base))}))
    assert len(body) == size
    return body


@pytest.mark.parametrize(("size", "status"), [(4000, 200), (4001, 413)])
def test_body_size_limit_is_exact(size, status):
    client, publisher = _limits_client()
    with client:
        response = client.post("/hooks/shop", content=_sized(size), headers=AUTH)
    assert response.status_code == status, response.text
    if status == 413:
        assert response.json()["error"] == "body_too_large"
        assert "4000 bytes" in response.json()["detail"]
        assert [r.topic for r in publisher.records] == ["landbot.dead-letter"]


def test_body_size_limit_holds_without_content_length():
    """A chunked body (no Content-Length) is counted while it streams in."""
    client, publisher = _limits_client()
    chunks = iter([b"x" * 1000] * 10)
    with client:
        response = client.post("/hooks/shop", content=chunks, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert [r.topic for r in publisher.records] == ["landbot.dead-letter"]


@pytest.mark.parametrize(("count", "status"), [(3, 200), (4, 413)])
def test_messages_per_request_limit_is_exact(count, status):
    client, publisher = _limits_client()
    messages = [_message(_raw={"chat": i, "uuid": f"u{i}"}, data={"body": "x"}) for i in range(count)]
    with client:
        response = client.post("/hooks/shop", content=_body(*messages), headers=AUTH)
    assert response.status_code == status, response.text
    answer = response.json()
    if status == 413:
        assert answer["error"] == "too_many_messages"
        assert answer["detail"] == "4 messages in one request; the limit is 3"
        assert [r.topic for r in publisher.records] == ["landbot.dead-letter"]
        assert json.loads(publisher.records[0].value)["reason"] == "too_many_messages"
    else:
        assert answer["accepted"] == 3


# -- no token and no message text in logs or metrics -----------------------------------------


def test_no_token_or_text_in_logs_or_metrics_for_any_outcome(caplog):
    caplog.set_level(logging.DEBUG)
    client, _ = _client(MESSAGEHOOKS_MAX_BODY_BYTES="20000")
    good = _message(data={"body": SECRET_TEXT}, type=f"type-{SECRET_TEXT}")
    bad = {"type": "text", "timestamp": "x", "data": {"body": SECRET_TEXT}, "_raw": {"chat": SECRET_TEXT}}
    sent = [
        ("/hooks/shop", _body(good), AUTH),  # accepted (with an unknown type)
        ("/hooks/shop", _body(good, bad), AUTH),  # partly bad
        ("/hooks/shop", _body(bad), AUTH),  # 422
        ("/hooks/shop", SECRET_TEXT.encode(), AUTH),  # 400
        ("/hooks/shop", _body(_message(data={"body": SECRET_TEXT * 1000})), AUTH),  # 413
        ("/hooks/shop", _body(good), {"Authorization": f"Token {TOKEN}x"}),  # 401
        ("/hooks/shop", _body(good), {"Authorization": f"Bearer {OLD_TOKEN[:-1]}"}),  # 401
        (f"/hooks/{TOKEN}", _body(good), AUTH),  # 404 with the token as hook name
        ("/hooks/shop", _body(good), {"Authorization": f"Token {TOKEN}", "sentry-trace": SECRET_TEXT}),
    ]
    with client:
        statuses = [
            client.post(path, content=body, headers=headers).status_code for path, body, headers in sent
        ]
        metrics = client.get("/metrics").text
    assert statuses == [200, 200, 422, 400, 413, 401, 401, 404, 200]
    formatter = JsonFormatter()
    server_side = [
        r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]  # not the client
    logged = "\n".join(formatter.format(r) + repr(r.__dict__) for r in server_side)
    assert "dead-lettered" in logged  # the logs did see these requests
    for secret in (TOKEN, OLD_TOKEN, OLD_TOKEN[:-1], "zebra-quartz", "4111"):
        assert secret not in logged, secret
        assert secret not in metrics, secret
    assert 'type="other"' in metrics  # an unknown type is not a label value


# -- secrets from env or a file, never echoed ------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_hooks_from_a_file_are_used_and_never_shown(tmp_path, monkeypatch, capsys, suffix):
    path = tmp_path / f"hooks{suffix}"
    if suffix == ".json":
        path.write_text(HOOKS)
    else:
        path.write_text(f'[[hooks]]\nname = "shop"\ntokens = ["{OLD_TOKEN}", "{TOKEN}"]\n')
    settings = load_settings({"MESSAGEHOOKS_HOOKS": str(path)})
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings)
    with TestClient(create_app(settings, InMemoryPublisher())) as client:
        assert client.post("/hooks/shop", content=BODY, headers=AUTH).status_code == 200
        assert (
            client.post("/hooks/shop", content=BODY, headers={"Authorization": "Token no"}).status_code == 401
        )
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", str(path))
    _assert_help_hides(capsys, TOKEN, OLD_TOKEN)


def test_help_never_shows_tokens_from_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", HOOKS)
    _assert_help_hides(capsys, TOKEN, OLD_TOKEN)


def _assert_help_hides(capsys: pytest.CaptureFixture[str], *secrets: str) -> None:
    commands = [[], *([name] for name in ("ingest", "worker", "sink", "up", "broker", "topics", "replay"))]
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr()
        assert "usage: messagehooks" in out.out
        for secret in secrets:
            assert secret not in out.out + out.err, command


MALFORMED_HOOKS = {
    "json-truncated.json": f'[{{"name": "shop", "token": "{TOKEN}"',
    "json-not-a-list.json": f'{{"name": "shop", "token": "{TOKEN}"}}',
    "json-bad-name.json": f'[{{"name": "-bad", "token": "{TOKEN}"}}]',
    "json-token-not-string.json": '[{"name": "shop", "tokens": "' + TOKEN + '"}]',
    "json-duplicate.json": json.dumps([{"name": "shop", "token": TOKEN}] * 2),
    "toml-unterminated.toml": f'[[hooks]]\nname = "shop"\ntoken = "{TOKEN}\n',
    "toml-garbage-after.toml": f'[[hooks]]\nname = "shop"\ntoken = "{TOKEN}" oops\n',
    "toml-no-hooks.toml": f'token = "{TOKEN}"\n',
}


@pytest.mark.parametrize("name", list(MALFORMED_HOOKS))
def test_config_errors_from_a_hooks_file_never_echo_the_token(tmp_path, monkeypatch, capsys, name):
    path = tmp_path / name
    path.write_text(MALFORMED_HOOKS[name])
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", str(path))
    assert cli.main(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error: MESSAGEHOOKS_HOOKS")
    assert err.count("\n") == 1  # one line, no traceback
    assert TOKEN not in err


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f'[{{"name": "shop", "token": "{TOKEN}"', id="inline-json-truncated"),
        pytest.param(f'[{{"name": "shop", "tokens": [5, "{TOKEN}"]}}]', id="inline-token-not-string"),
        pytest.param(f'{{"name": "shop", "token": "{TOKEN}"}}', id="inline-object-instead-of-list"),
    ],
)
def test_config_errors_from_the_environment_never_echo_the_token(monkeypatch, capsys, value):
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", value)
    assert cli.main(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error:")
    assert TOKEN not in err
    with pytest.raises(ConfigError) as info:
        load_settings({"MESSAGEHOOKS_HOOKS": value})
    assert TOKEN not in str(info.value)
