"""Limits uvicorn's httptools protocol lacks: header size, header time, whole-request time.

httptools keeps every header byte a client sends until the blank line that ends them (8
connections sending 60 MB each took the ingest from 47 MB to 599 MB), and uvicorn times a
connection only while it idles between requests, so a client sending one header byte a second
held its connection for ever. ASGI middleware runs only once the headers are complete, too late
for both; h11, which has a header limit, serves 3x fewer requests. So this subclass of uvicorn's
protocol counts and times what it reads, answers 431 or 408 (JSON, as the app answers) and
closes the connection:

- headers (with the request line) over `max_header_bytes`: 431 `headers_too_large`;
- headers not complete `header_timeout` seconds after the request's first byte (or after the
  connection opened): 408 `header_timeout`;
- a request not fully received and answered `request_deadline` seconds after it began: 408
  `request_deadline` (only the close, if the app has started its answer).

It overrides parser callbacks and reads the request cycle of uvicorn's protocol, which are not a
public API: tests/ingest/test_connection_guard.py drives a real server, so an upgrade that
changes them fails there.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one request may cost before its connection is closed."""

    max_header_bytes: int
    header_timeout: float
    request_deadline: float


@dataclass(frozen=True, slots=True)
class Guard:
    """The limits, and whom to tell (`on_cut(reason)`) when a connection is cut."""

    limits: ConnectionLimits
    on_cut: Callable[[str], None]


def guarded_protocol(limits: ConnectionLimits, on_cut: Callable[[str], None]) -> type[HttpToolsProtocol]:
    """The httptools protocol of uvicorn with `limits` (pass it as `uvicorn.Config(http=...)`)."""

    class Guarded(GuardedHttpToolsProtocol):
        guard = Guard(limits, on_cut)

    return Guarded


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that enforces `guard.limits` (set by `guarded_protocol`)."""

    guard: ClassVar[Guard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # the next bytes belong to a request line or headers
        self._head_bytes = 0
        self._body_done = False
        # When the headers and the request are due (loop time), and one timer for the earlier:
        # a timer per request would cost a libuv timer each; this one fires about once per limit.
        self._header_due: float | None = None
        self._deadline_due: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # asyncio types it BaseTransport; uvicorn's base ignores it too
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        limit = self.guard.limits.max_header_bytes
        if self._reading_head:
            self._head_bytes += len(data)  # counted before the parser copies them
            self._arm()  # also for bytes the parser skips (CRLFs before a request line)
        super().data_received(data)
        if self._reading_head and self._head_bytes > limit:
            self._cut(431, "headers_too_large", f"the request line and headers exceed {limit} bytes")

    def on_headers_complete(self) -> None:
        self._reading_head, self._body_done, self._header_due = False, False, None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes, self._body_done = True, 0, True
        if self.cycle is not None and self.cycle.response_complete:
            self._deadline_due = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._body_done:  # else the client is still sending a body the app did not read
            self._deadline_due = None

    def _arm(self) -> None:
        """Start the clocks of a request, unless they already run (since the connection opened)."""
        limits = self.guard.limits
        now = self.loop.time()
        if self._header_due is None:
            self._header_due = now + limits.header_timeout
        if self._deadline_due is None:
            self._deadline_due = now + limits.request_deadline
        due = min(self._header_due, self._deadline_due)
        if self._timer is not None and self._timer_at <= due:
            return  # it fires first and looks again
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(due, self._on_timer)
        self._timer_at = due

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        limits = self.guard.limits
        if self._header_due is not None and now >= self._header_due:
            detail = f"the request line and headers did not arrive within {limits.header_timeout:g} s"
            self._cut(408, "header_timeout", detail)
        elif self._deadline_due is not None and now >= self._deadline_due:
            detail = f"the request was not received and answered within {limits.request_deadline:g} s"
            self._cut(408, "request_deadline", detail)
        else:
            pending = [due for due in (self._header_due, self._deadline_due) if due is not None]
            if pending:
                self._timer = self.loop.call_at(min(pending), self._on_timer)
                self._timer_at = min(pending)

    def _cut(self, status: int, error: str, detail: str) -> None:
        """Answer `status` if no other answer is under way on the connection, then close it."""
        if self.transport.is_closing():
            return
        self._header_due = self._deadline_due = None
        if self._may_answer():
            self._write_error(status, error, detail)
        cycle = self.cycle
        if cycle is not None:  # the app's further sends are dropped, its receive() ends
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()
        self.logger.warning("connection closed: %s", detail)
        self.guard.on_cut(error)

    def _may_answer(self) -> bool:
        cycle = self.cycle
        if cycle is None:
            return True
        if self._reading_head:  # between requests: the last one's answer must be whole or unstarted
            return cycle.response_complete or not cycle.response_started
        return not cycle.response_started

    def _write_error(self, status: int, error: str, detail: str) -> None:
        body = orjson.dumps({"error": error, "detail": detail})
        head = [STATUS_LINE[status]]
        head.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
