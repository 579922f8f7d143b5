"""Limits before the body (ingest/connection_guard.py), against a real ingest process and sockets.

One ingest (no broker needed: nothing here reaches the app's publisher) with a 1 s header timeout,
a 3 s request deadline and a body timeout longer than the deadline, so each limit is the one
that acts. Every socket has a timeout: a limit that does not act fails the test, never hangs it.
"""

import json
import select
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from devtools.tansu import free_port
from tests.integration.processes import IngestProcess

pytestmark = pytest.mark.integration

HEADER_TIMEOUT = 1.0
REQUEST_DEADLINE = 3.0
MAX_HEADER_BYTES = 32_768  # the default
SOCKET_TIMEOUT = 20.0  # far above every limit: reaching it means the limit did not act
HEAD = b"POST /hooks/default HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module")
def ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IngestProcess]:
    tmp = tmp_path_factory.mktemp("guard")
    env = {
        "MESSAGEHOOKS_BROKER_PORT": str(free_port()),  # no broker: the app is never reached
        "MESSAGEHOOKS_DATA_DIR": str(tmp),
        "MESSAGEHOOKS_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "MESSAGEHOOKS_REQUEST_DEADLINE": str(REQUEST_DEADLINE),
        "MESSAGEHOOKS_REQUEST_TIMEOUT": "60",
        "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
    }
    process = IngestProcess(env, tmp / "ingest.log").start()
    try:
        yield process
    finally:
        process.stop()


def _connect(ingest: IngestProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", ingest.port), timeout=SOCKET_TIMEOUT)


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the ingest sends until it closes; a socket timeout fails the test."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # closed with bytes of ours unread: a reset, after the answer we already hold
    return data


def _answer(data: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def _get(sock: socket.socket, path: str = "/healthz") -> int:
    """One keep-alive GET on an open connection; its status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed: {data!r}"
        data += chunk
    return int(data.split(b" ", 2)[1])


def _metrics(ingest: IngestProcess) -> str:
    with _connect(ingest) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return _read_to_close(sock).decode()


def test_headers_over_the_limit_get_431_and_the_connection_closes(ingest):
    with _connect(ingest) as sock:
        sent = 0
        try:
            sock.sendall(HEAD)
            while sent < 8 << 20:  # the ingest cuts long before: 8 MB would be a failure
                sock.sendall(b"X-Flood: " + b"a" * 1013 + b"\r\n")
                sent += 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, headers, body = _answer(_read_to_close(sock))
    assert sent < 8 << 20
    assert status == 431
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"
    assert body["error"] == "headers_too_large"
    assert str(MAX_HEADER_BYTES) in body["detail"]
    assert 'messagehooks_connections_cut_total{reason="headers_too_large"}' in _metrics(ingest)


def test_headers_just_under_the_limit_are_served(ingest):
    with _connect(ingest) as sock:
        padding = "".join(f"X-Pad-{i}: {'b' * 990}\r\n" for i in range(30))  # ~30 KB
        sock.sendall(
            f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{padding}Connection: close\r\n\r\n".encode()
        )
        data = _read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def test_a_flood_of_headers_leaves_the_memory_where_it_was(ingest):
    """The issue's attack: 8 connections at once, each trying to send 60 MB of headers."""
    before = ingest.memory_kb()["VmRSS"]
    sent = [0] * 8
    answers = [b""] * 8

    def flood(i: int) -> None:
        with _connect(ingest) as sock:
            try:
                sock.sendall(HEAD)
                line = b"X-Flood: " + b"a" * 1013 + b"\r\n"
                while sent[i] < 60 << 20:
                    sock.sendall(line * 64)
                    sent[i] += 64 * len(line)
            except (BrokenPipeError, ConnectionResetError):
                pass
            answers[i] = _read_to_close(sock)

    threads = [threading.Thread(target=flood, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    after = ingest.memory_kb()
    assert all(s < 60 << 20 for s in sent), sent  # every flood was cut short
    assert all(a.startswith(b"HTTP/1.1 431") for a in answers), answers
    # The peak of the whole process so far (start-up included) stays near its resting size.
    assert after["VmHWM"] < before + 30 * 1024, (before, after)


@pytest.mark.parametrize(
    ("head", "trickle", "error", "seconds"),
    [
        pytest.param(HEAD, b"X-Slow: " + b"a" * 200, "header_timeout", HEADER_TIMEOUT, id="headers"),
        # The body timeout (60 s) is longer than the deadline (3 s): the deadline acts.
        pytest.param(
            HEAD + b"Content-Length: 1000\r\n\r\n",
            b" " * 200,
            "request_deadline",
            REQUEST_DEADLINE,
            id="body",
        ),
    ],
)
def test_a_request_sent_a_byte_at_a_time_gets_408_and_the_connection_closes(
    ingest, head, trickle, error, seconds
):
    with _connect(ingest) as sock:
        sock.sendall(head)
        dribbled = _trickle(sock, trickle)  # 0.1 s a byte: 20 s if the ingest never cuts
        status, headers, body = _answer(_read_to_close(sock))
    assert dribbled < len(trickle)
    assert status == 408
    assert headers["connection"] == "close"
    assert body["error"] == error
    assert f"within {seconds:g} s" in body["detail"]


def test_a_connection_that_sends_nothing_is_closed(ingest):
    with _connect(ingest) as sock:
        status, _, body = _answer(_read_to_close(sock))
    assert (status, body["error"]) == (408, "header_timeout")


def test_a_body_still_coming_after_an_early_answer_is_cut_at_the_deadline(ingest):
    """An unknown hook is answered 404 before its body is read; the body may not trickle on for ever."""
    with _connect(ingest) as sock:
        sock.sendall(b"POST /hooks/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n")
        data = b""
        try:
            for _ in range(200):  # 20 s if the ingest never closes
                sock.sendall(b" ")
                time.sleep(0.1)
                if _readable(sock):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
        data += _read_to_close(sock)
    assert data.startswith(b"HTTP/1.1 404"), data[:200]
    assert data.count(b"HTTP/1.1") == 1  # the deadline closes without a second answer


def test_a_kept_alive_connection_outlives_the_deadline_between_requests(ingest):
    with _connect(ingest) as sock:
        statuses = [_get(sock)]
        for _ in range(2):  # 4 s in all, past the 3 s deadline, each pause under the keep-alive
            time.sleep(2)
            statuses.append(_get(sock))
    assert statuses == [200, 200, 200]


def _trickle(sock: socket.socket, data: bytes) -> int:
    """Send `data` a byte every 0.1 s until the ingest answers or closes; the bytes sent."""
    sent = 0
    try:
        for byte in data:
            sock.sendall(bytes([byte]))
            sent += 1
            time.sleep(0.1)
            if _readable(sock):
                break
    except (BrokenPipeError, ConnectionResetError):
        pass
    return sent


def _readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])
