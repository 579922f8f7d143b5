"""`messagehooks replay`: line parsing, retries and errors, and a replay into a real ingest."""

import asyncio
import io
import json
import logging

import httpx
import pytest

from cli.main import main
from devtools.replay import USER_AGENT, Delivery, MalformedLine, parse_line, replay
from devtools.tansu import free_port
from messagehooks.errors import ConfigError
from tests.conftest import broker_env
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess

TOKEN = "replay-token-9a8b7c6d"
TRACE = "0123456789abcdef0123456789abcdef"
DEFAULTS = {"Content-Type": "application/json", "User-Agent": USER_AGENT}


@pytest.fixture(autouse=True)
def _restore_logging():
    """`main` configures the root logger onto the (captured) stderr: undo it after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _line(value) -> str:
    return json.dumps(value)


def _body(chat: int = 501, text: str = "hi!", uuid: str | None = None) -> dict:
    return landbot_body(landbot_message(chat=chat, body=text, uuid=uuid))


def _write(tmp_path, *lines: str, name: str = "capture.jsonl"):
    path = tmp_path / name
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


# --- line parsing ---------------------------------------------------------------------------------


def test_a_body_line_is_sent_byte_for_byte():
    raw = b'{"messages":  [{"type": "text", "_raw": {"uuid": "u1"}}]}  \n'
    delivery = parse_line(raw, 3)
    assert delivery == Delivery(3, raw.strip(), dict(DEFAULTS))


def test_the_token_is_used_only_when_the_line_has_no_authorization():
    assert parse_line(b'{"messages": []}', 1, token="t")
    assert parse_line(b'{"messages": []}', 1, token="t").headers["Authorization"] == "Token t"
    wrapper = {"body": {"messages": []}, "headers": {"authorization": "Token own"}}
    headers = parse_line(_line(wrapper).encode(), 1, token="t").headers
    assert headers["authorization"] == "Token own"
    assert "Authorization" not in headers


def test_a_wrapper_sends_its_body_and_headers():
    raw = (
        b'{"body": {"messages":  [1, 2]}, "headers": {"sentry-trace": "abc-1", "X-Other": "y"}, "hook": "h"}'
    )
    delivery = parse_line(raw, 7)
    assert delivery.line == 7
    assert delivery.body == b'{"messages":  [1, 2]}'  # the captured bytes, not a re-encoding
    assert delivery.headers == {"sentry-trace": "abc-1", "X-Other": "y", **DEFAULTS}


def test_a_wrapper_body_may_be_a_string_and_connection_headers_are_dropped():
    wrapper = {
        "body": '{"messages": [{"body": "h\u00e9"}]}',  # json.dumps escapes the e-acute
        "headers": {"Content-Length": "999", "Host": "old", "user-agent": "Landbot", "sentry-trace": None},
    }
    delivery = parse_line(_line(wrapper).encode(), 1)
    assert delivery.body == '{"messages": [{"body": "h\u00e9"}]}'.encode()  # UTF-8
    assert delivery.headers == {"user-agent": "Landbot", "Content-Type": "application/json"}


def test_a_raw_topic_record_is_a_valid_line():
    record = {
        "schema_version": 1,
        "request_id": "r1",
        "hook": "docs",
        "received_at": 1.5,
        "headers": {"sentry-trace": f"{TRACE}-0000000000000001-1"},
        "body": _body(),
    }
    delivery = parse_line(_line(record).encode(), 1)
    assert json.loads(delivery.body) == _body()
    assert delivery.headers["sentry-trace"] == f"{TRACE}-0000000000000001-1"


@pytest.mark.parametrize("raw", [b"", b"\n", b"   \t \r\n"])
def test_blank_lines_are_skipped(raw):
    assert parse_line(raw, 1) is None


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{oops", "not JSON"),
        (b'{"messages": []} trailing', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b'{"messages": "\xff"}', "not UTF-8"),
        (b'{"body": 42}', "'body' must be a JSON object or a string"),
        (b'{"body": {}, "headers": {"a": 1}}', "'headers' must be an object of strings"),
        (b'{"body": {}, "headers": []}', "'headers' must be an object of strings"),
    ],
)
def test_malformed_lines_say_why(raw, reason):
    with pytest.raises(MalformedLine, match=reason):
        parse_line(raw, 1)


# --- replay against a fake transport -----------------------------------------------------------


class Recorder:
    """A MockTransport handler that answers from a list of statuses and records the requests."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status < 300:
            return httpx.Response(status, json={"accepted": 1, "rejected": 0})
        return httpx.Response(status, json={"error": "invalid_message", "detail": "..."})


async def test_replay_sends_in_order_skips_blank_and_reports_malformed_lines(tmp_path):
    path = _write(
        tmp_path,
        _line(_body(text="one")),
        "",
        "not json",
        _line({"body": _body(text="two"), "headers": {"sentry-trace": f"{TRACE}-1-1"}}),
        "[]",
        _line(_body(text="three")),
    )
    recorder, out = Recorder(200, 422), io.StringIO()
    summary = await replay(
        path, "http://ingest/hooks/docs", out=out, token=TOKEN, transport=httpx.MockTransport(recorder)
    )
    bodies = [json.loads(r.content)["messages"][0]["data"]["body"] for r in recorder.requests]
    assert bodies == ["one", "two", "three"]
    assert all(r.headers["authorization"] == f"Token {TOKEN}" for r in recorder.requests)
    assert recorder.requests[1].headers["sentry-trace"] == f"{TRACE}-1-1"
    assert (summary.lines, summary.sent, summary.malformed) == (5, 3, 2)
    assert dict(summary.statuses) == {200: 2, 422: 1}
    assert [(f.line, f.reason.split(":")[0]) for f in summary.failed] == [
        (3, "malformed, skipped"),
        (4, "HTTP 422 invalid_message"),
        (5, "malformed, skipped"),
    ]
    assert not summary.ok
    text = out.getvalue()
    assert "replay: line 3: malformed, skipped: not JSON" in text
    assert "replay: line 4: HTTP 422 invalid_message" in text
    assert text.splitlines()[-1].startswith("replay: done: 5 lines, 3 sent (status 200: 2, 422: 1;")
    assert "3 failed (lines 3, 4, 5)" in text.splitlines()[-1]


async def test_a_retry_resends_the_same_bytes_and_headers(tmp_path):
    path = _write(tmp_path, _line({"body": _body(), "headers": {"sentry-trace": f"{TRACE}-1-1"}}))
    recorder = Recorder(503, 500, 200)
    summary = await replay(
        path,
        "http://ingest/hooks/docs",
        out=io.StringIO(),
        retries=2,
        retry_delay=0,
        transport=httpx.MockTransport(recorder),
    )
    assert summary.ok
    assert (summary.sent, summary.retries, dict(summary.statuses)) == (1, 2, {200: 1})
    assert len({(r.content, r.headers["sentry-trace"]) for r in recorder.requests}) == 1
    assert len(recorder.requests) == 3


async def test_retries_exhausted_and_transport_errors_fail_the_line(tmp_path):
    path = _write(tmp_path, _line(_body(text="a")), _line(_body(text="b")))

    def handler(request: httpx.Request) -> httpx.Response:
        if b'"a"' in request.content:
            return httpx.Response(500, text="boom")
        raise httpx.ReadTimeout("timed out", request=request)

    summary = await replay(
        path,
        "http://ingest/hooks/docs",
        out=io.StringIO(),
        retries=1,
        retry_delay=0,
        transport=httpx.MockTransport(handler),
    )
    assert (summary.sent, summary.retries, summary.transport_errors) == (2, 2, 1)
    assert dict(summary.statuses) == {500: 1}
    assert [(f.line, f.reason) for f in summary.failed] == [
        (1, "HTTP 500 boom"),
        (2, "ReadTimeout (timed out)"),
    ]


async def test_concurrency_sends_everything_with_requests_in_flight_together(tmp_path):
    path = _write(tmp_path, *(_line(_body(text=str(i))) for i in range(20)))
    in_flight, peak = 0, 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200)

    out = io.StringIO()
    summary = await replay(
        path,
        "http://ingest/hooks/docs",
        out=out,
        concurrency=4,
        progress_every=5,
        transport=httpx.MockTransport(handler),
    )
    assert summary.ok
    assert (summary.sent, dict(summary.statuses)) == (20, {200: 20})
    assert 1 < peak <= 4
    progress = [line for line in out.getvalue().splitlines() if "sent, 0 failed" in line]
    assert [line.split()[1] for line in progress] == ["5", "10", "15", "20"]


async def test_an_unreachable_url_is_one_clear_error(tmp_path):
    path = _write(tmp_path, _line(_body()), _line(_body()))
    url = f"http://127.0.0.1:{free_port()}/hooks/docs"
    with pytest.raises(ConfigError, match=r"cannot reach http://127\.0\.0\.1:\d+/hooks/docs: ConnectError"):
        await replay(path, url, out=io.StringIO(), timeout=2)


async def test_a_missing_file_or_a_bad_option_fails_before_any_request(tmp_path):
    transport = httpx.MockTransport(lambda request: pytest.fail("nothing may be sent"))
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.jsonl: No such file"):
        await replay(tmp_path / "missing.jsonl", "http://x/hooks/a", out=io.StringIO(), transport=transport)
    path = _write(tmp_path, _line(_body()))
    for url in ("ftp://x/hooks/a", "hooks/a"):
        with pytest.raises(ConfigError, match="invalid --url"):
            await replay(path, url, out=io.StringIO(), transport=transport)
    with pytest.raises(ConfigError, match="--concurrency"):
        await replay(path, "http://x/hooks/a", out=io.StringIO(), concurrency=0, transport=transport)


def test_cli_missing_file_is_one_line_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    assert main(["replay", str(missing), "--url", "http://127.0.0.1:9/hooks/docs"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"messagehooks: error: cannot read {missing}: No such file or directory\n"
    assert "Traceback" not in captured.err + captured.out


def test_cli_requires_url(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(tmp_path / "a.jsonl")])
    assert exc.value.code == 2
    assert "--url" in capsys.readouterr().err


# --- a real ingest ----------------------------------------------------------------------------------


@pytest.fixture
def ingest(broker, unique, tmp_path):
    hooks = [{"name": "docs", "channel": 761536, "token": TOKEN}]
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"r{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
        "MESSAGEHOOKS_HOOKS": json.dumps(hooks),
    }
    process = IngestProcess(env, tmp_path / "ingest.log").start()
    process.wait_ready()
    process.prefix = f"r{unique}."
    yield process
    process.stop()


def _messages(broker, ingest, expect: int) -> list[dict]:
    records = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}messages", expect=expect))
    return sorted(records, key=lambda r: (r["_partition"], r["_offset"]))


@pytest.mark.integration
def test_replayed_lines_arrive_on_the_messages_topic_in_file_order(ingest, broker, unique, tmp_path):
    trace = f"{TRACE}-0000000000000001-1"
    wrapper = {"body": _body(text="two"), "headers": {"sentry-trace": trace}}
    path = _write(
        tmp_path,
        _line(_body(text="one", uuid=f"{unique}-1")),
        "",
        _line(wrapper),
        _line(wrapper),  # Landbot retried this delivery: captured twice, same sentry-trace
        _line(_body(text="one", uuid=f"{unique}-1")),  # and this one, same _raw.uuid
        "{not json",
        _line({"body": json.dumps(_body(chat=502, text="three", uuid=f"{unique}-3"))}),
    )
    out = io.StringIO()
    summary = asyncio.run(replay(path, f"{ingest.url}/hooks/docs", out=out, token=TOKEN))
    assert (summary.lines, summary.sent, summary.malformed, dict(summary.statuses)) == (6, 5, 1, {200: 5})
    assert [f.line for f in summary.failed] == [6]

    messages = _messages(broker, ingest, expect=5)
    chat_501 = [(m["message_id"], m["body"]) for m in messages if m["chat_id"] == "501"]
    retried = chat_501[1][0]
    assert retried.startswith("hash-")
    assert chat_501 == [
        (f"{unique}-1", "one"),
        (retried, "two"),
        (retried, "two"),
        (f"{unique}-1", "one"),
    ]
    assert [(m["message_id"], m["body"]) for m in messages if m["chat_id"] == "502"] == [
        (f"{unique}-3", "three")
    ]


class LostFirstAnswer(httpx.AsyncBaseTransport):
    """Delivers every request, but answers the first attempt of each body 504 (a lost answer)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.seen: set[bytes] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.content in self.seen:
            return response
        self.seen.add(request.content)
        await response.aread()
        await response.aclose()
        return httpx.Response(504, text="gateway timeout")

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.integration
def test_a_retried_line_keeps_its_message_id(ingest, broker, unique, tmp_path):
    path = _write(
        tmp_path,
        _line(_body(text="uuid", uuid=f"{unique}-u")),
        _line({"body": _body(text="trace"), "headers": {"sentry-trace": f"{TRACE}-00000000000000aa-1"}}),
        _line(_body(text="hashed")),  # neither: the id is a hash of the message
    )
    summary = asyncio.run(
        replay(
            path,
            f"{ingest.url}/hooks/docs",
            out=io.StringIO(),
            token=TOKEN,
            retries=2,
            retry_delay=0,
            transport=LostFirstAnswer(),
        )
    )
    assert summary.ok
    assert (summary.sent, summary.retries, dict(summary.statuses)) == (3, 3, {200: 3})
    ids = [(m["body"], m["message_id"]) for m in _messages(broker, ingest, expect=6)]
    assert len(ids) == 6  # each line reached the ingest twice ...
    by_body = {body: {i for b, i in ids if b == body} for body, _ in ids}
    assert by_body["uuid"] == {f"{unique}-u"}  # ... with one id per line
    (traced,) = by_body["trace"]
    assert traced.startswith("hash-")
    (hashed,) = by_body["hashed"]
    assert hashed.startswith("hash-")


@pytest.mark.integration
def test_cli_replay_exit_code_says_whether_every_line_got_a_2xx(ingest, tmp_path, capsys):
    url = f"{ingest.url}/hooks/docs"
    good = _write(tmp_path, _line(_body(text="a")), _line(_body(text="b")), name="good.jsonl")
    assert main(["replay", str(good), "--url", url, "--token", TOKEN, "--concurrency", "2"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[-1].startswith("replay: done: 2 lines, 2 sent (status 200: 2;")
    )
    bad = _write(tmp_path, _line(_body(text="a")), "oops", name="bad.jsonl")
    assert main(["replay", str(bad), "--url", url, "--token", TOKEN]) == 1
    assert main(["replay", str(good), "--url", url]) == 1  # no token: 401
    out = capsys.readouterr().out
    assert "replay: line 2: malformed, skipped: not JSON" in out
    assert "replay: line 1: HTTP 401" in out
