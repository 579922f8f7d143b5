"""Per-hook rate limit (429) and the request-body timeout (408, the connection closed)."""

import json
import select
import socket
import time

import pytest
from starlette.testclient import TestClient

from ingest.app import create_app
from ingest.publisher import InMemoryPublisher
from ingest.ratelimit import RateLimiter
from messagehooks.settings import load_settings
from tests.conftest import FIXTURES, broker_env
from tests.integration.processes import IngestProcess

HOOKS = json.dumps([{"name": "a", "token": "tok-a"}, {"name": "b", "token": "tok-b"}])
BODY = (FIXTURES / "body_button_customer_docs.json").read_bytes()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_of_one_second_then_the_rate():
    clock = FakeClock()
    limiter = RateLimiter(4, clock=clock)
    assert [limiter.allow("a") for _ in range(6)] == [True] * 4 + [False] * 2
    assert limiter.retry_after("a") == pytest.approx(0.25)
    clock.now += 0.5  # two tokens back
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")  # hooks have their own buckets


@pytest.mark.parametrize("rate", [0.5, 0.2])
def test_a_rate_below_one_per_second_lets_one_request_through_per_period(rate):
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    period = 1 / rate
    answers = []
    for _ in range(20):  # the case: 20 requests, each a little more than a period apart
        answers.append(limiter.allow("a"))
        clock.now += period * 1.5
    assert answers == [True] * 20
    assert limiter.allow("a") is True
    assert limiter.allow("a") is False  # a burst never exceeds one request
    assert limiter.retry_after("a") == pytest.approx(period)
    clock.now += period / 2
    assert limiter.allow("a") is False
    assert limiter.retry_after("a") == pytest.approx(period / 2)
    clock.now += period / 2
    assert limiter.allow("a") is True


def test_no_limit_by_default():
    limiter = RateLimiter(0)
    assert all(limiter.allow("a") for _ in range(10_000))
    assert limiter.retry_after("a") == 0


def test_over_the_limit_is_429_json_with_retry_after_and_nothing_stored():
    publisher = InMemoryPublisher()
    settings = load_settings({"MESSAGEHOOKS_HOOKS": HOOKS, "MESSAGEHOOKS_RATE_LIMIT": "2"})
    with TestClient(create_app(settings, publisher)) as client:
        answers = [
            client.post("/hooks/a", content=BODY, headers={"Authorization": "Token tok-a"}) for _ in range(4)
        ]
        other = client.post("/hooks/b", content=BODY, headers={"Authorization": "Token tok-b"})
        metrics = client.get("/metrics").text
    assert [a.status_code for a in answers] == [200, 200, 429, 429]
    assert answers[2].json()["error"] == "rate_limited"
    assert "2 requests/s" in answers[2].json()["detail"]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert other.status_code == 200
    assert len(publisher.records) == 3 * 2  # raw + messages for the three accepted requests
    assert 'messagehooks_requests_total{hook="a",status="429"} 2.0' in metrics


def test_half_a_request_per_second_accepts_the_first_and_names_the_wait():
    publisher = InMemoryPublisher()
    settings = load_settings({"MESSAGEHOOKS_HOOKS": HOOKS, "MESSAGEHOOKS_RATE_LIMIT": "0.5"})
    with TestClient(create_app(settings, publisher)) as client:
        auth = {"Authorization": "Token tok-a"}
        answers = [client.post("/hooks/a", content=BODY, headers=auth) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].headers["retry-after"] == "2"
    assert "0.5 requests/s" in answers[1].json()["detail"]


@pytest.mark.integration
def test_a_body_sent_too_slowly_gets_408_and_its_connection_closed(broker, unique, tmp_path):
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"lim{unique}.",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
        "MESSAGEHOOKS_REQUEST_TIMEOUT": "1",
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    try:
        with socket.create_connection(("127.0.0.1", ingest.port), timeout=10) as sock:
            head = f"POST /hooks/default HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n\r\n"
            sock.sendall(head.encode())
            answer = b""
            for byte in BODY[:40]:  # one byte every 0.1 s, and never the whole body
                sock.sendall(bytes([byte]))
                time.sleep(0.1)
                if select.select([sock], [], [], 0)[0]:
                    break  # the answer (or the close) is there: stop the trickle
            closed = False
            try:
                while chunk := sock.recv(65536):  # the 408 came during the trickle, or comes now
                    answer += chunk
                closed = True  # the ingest closed the connection (a timeout would fail the test)
            except ConnectionResetError:
                closed = True  # closed with bytes of the trickle unread
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"error":"request_timeout"' in answer
        assert b"connection: close" in answer.lower()
        assert closed
    finally:
        ingest.stop()
