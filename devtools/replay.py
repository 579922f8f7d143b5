"""`messagehooks replay`: POST recorded MessageHook deliveries (a JSONL file) to an ingest URL.

Each non-blank line of the file is one delivery in the recorded-delivery format
(messagehooks/recorded.py): a Landbot body, sent byte for byte, or a wrapper
``{"body": ..., "headers": {"Authorization": ..., "sentry-trace": ...}}`` (a record of the ``raw``
topic is one), whose body is sent with its exact bytes and whose headers are sent along, but
those of the old connection. Any other JSON object is sent as a body too (the ingest judges it).
A line that is not JSON or not an object is reported with its line number and skipped.
Lines are sent in file order; with ``concurrency`` > 1 several requests are in flight at once
and the order is NOT kept (not even per chat). A retry re-sends the very same bytes and
headers, as Landbot does, so it gets the same message ids.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from messagehooks.errors import ConfigError, MalformedLine
from messagehooks.recorded import parse_recorded

# Headers of a captured request that describe its old connection, not the delivery.
_SKIPPED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "accept-encoding"}
)
USER_AGENT = "messagehooks-replay"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One line of the file, ready to POST."""

    line: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class FailedLine:
    """A line that did not end with a 2xx: malformed, non-2xx answer, or no answer."""

    line: int
    reason: str


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did. `statuses` counts the final HTTP status of each sent line."""

    lines: int = 0
    sent: int = 0
    malformed: int = 0
    retries: int = 0
    transport_errors: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failed: list[FailedLine] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every non-blank line was sent and answered 2xx."""
        return not self.failed

    def describe(self) -> str:
        """One line: counts by status, malformed, failed line numbers."""
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items())) or "none"
        text = (
            f"{self.lines} lines, {self.sent} sent (status {statuses}; "
            f"{self.transport_errors} without answer), {self.retries} retries, {self.malformed} malformed"
        )
        if self.failed:
            numbers = sorted(f.line for f in self.failed)
            shown = ", ".join(str(n) for n in numbers[:20]) + (", ..." if len(numbers) > 20 else "")
            text += f"; {len(numbers)} failed (lines {shown})"
        return text


def parse_line(raw: bytes, line: int, *, token: str | None = None) -> Delivery | None:
    """The delivery of one line (`messagehooks.recorded`), None for a blank line; raises `MalformedLine`.

    `token`, if given, becomes ``Authorization: Token <token>`` when the line has no
    Authorization header of its own.
    """
    recorded = parse_recorded(raw)
    if recorded is None:
        return None
    headers = {k: v for k, v in recorded.headers.items() if k.lower() not in _SKIPPED_HEADERS}
    present = {name.lower() for name in headers}
    if token is not None and "authorization" not in present:
        headers["Authorization"] = f"Token {token}"
    if "content-type" not in present:
        headers["Content-Type"] = "application/json"
    if "user-agent" not in present:
        headers["User-Agent"] = USER_AGENT
    return Delivery(line, recorded.body, headers)


def _read_lines(path: Path) -> Generator[tuple[int, bytes], None, None]:
    try:
        with path.open("rb") as file:
            yield from enumerate(file, start=1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid --url {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"invalid --url {url!r}: expected http(s)://host[:port]/hooks/<name>")


async def replay(
    path: Path,
    url: str,
    *,
    out: TextIO,
    token: str | None = None,
    concurrency: int = 1,
    retries: int = 0,
    retry_delay: float = 0.5,
    timeout: float = 10.0,
    progress_every: int = 100,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ReplaySummary:
    """POST every delivery of the JSONL file `path` to `url`; report on `out`; return the summary.

    Args:
        path: the JSONL file (see the module docstring for the line formats).
        url: where to POST, e.g. ``http://127.0.0.1:8000/hooks/default``.
        out: progress, malformed and failed lines, and the final summary are written here.
        token: ``Authorization: Token <token>`` for lines without an Authorization header.
        concurrency: requests in flight at once; above 1 the file order is not kept.
        retries: extra attempts after a non-2xx answer or a transport error (Landbot retries too).
        retry_delay: fixed seconds between two attempts of one line.
        timeout: seconds per request (connect, write and read each).
        progress_every: a progress line every this many sent lines (0: none).
        transport: an httpx transport (tests).

    Raises:
        ConfigError: an unreadable file, a bad option or URL, or a URL that never answered
            (connection refused or timed out before any line got an answer).
    """
    if concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {concurrency}")
    if retries < 0:
        raise ConfigError(f"--retries must be at least 0, got {retries}")
    if timeout <= 0 or retry_delay < 0:
        raise ConfigError("--timeout must be positive and the retry delay not negative")
    _check_url(url)
    lines = _read_lines(path)
    try:
        first = next(lines, None)  # opens the file: a missing file fails before any request
        summary = ReplaySummary()
        run = _Run(url, out, summary, retries, retry_delay, progress_every)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), limits=limits, transport=transport
        ) as client:
            await run.all(client, _with_first(first, lines), token, concurrency)
    finally:
        lines.close()
    if run.abort is not None:
        raise run.abort
    summary.failed.sort(key=lambda failed: failed.line)
    out.write(f"replay: done: {summary.describe()}\n")
    out.flush()
    return summary


def _with_first(
    first: tuple[int, bytes] | None, rest: Iterator[tuple[int, bytes]]
) -> Iterator[tuple[int, bytes]]:
    if first is not None:
        yield first
        yield from rest


class _Run:
    """The state of one replay: shared by its workers (all on one event loop)."""

    def __init__(
        self, url: str, out: TextIO, summary: ReplaySummary, retries: int, delay: float, every: int
    ) -> None:
        self.url = url
        self.out = out
        self.summary = summary
        self.retries = retries
        self.delay = delay
        self.every = every
        self.answered = False
        self.abort: ConfigError | None = None
        self.started = time.monotonic()

    async def all(
        self, client: httpx.AsyncClient, lines: Iterator[tuple[int, bytes]], token: str | None, n: int
    ) -> None:
        queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=2 * n)
        workers = [asyncio.create_task(self._worker(client, queue)) for _ in range(n)]
        try:
            for number, raw in lines:
                if self.abort is not None:
                    break
                try:
                    delivery = parse_line(raw, number, token=token)
                except MalformedLine as exc:
                    self.summary.lines += 1
                    self.summary.malformed += 1
                    self._fail(number, f"malformed, skipped: {exc}")
                    continue
                if delivery is not None:
                    self.summary.lines += 1
                    await queue.put(delivery)
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)

    async def _worker(self, client: httpx.AsyncClient, queue: "asyncio.Queue[Delivery | None]") -> None:
        while (delivery := await queue.get()) is not None:
            if self.abort is None:  # after an abort, only drain the queue
                await self._deliver(client, delivery)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        attempt = 0
        while True:
            try:
                response = await client.post(self.url, content=delivery.body, headers=delivery.headers)
            except httpx.TransportError as exc:
                status, reason = None, _transport_reason(exc)
                unreachable = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            else:
                self.answered = True
                status, unreachable = response.status_code, False
                if 200 <= status < 300:
                    return self._done(status)
                reason = _answer_reason(response)
            if attempt >= self.retries:
                break
            attempt += 1
            self.summary.retries += 1
            await asyncio.sleep(self.delay)
        if unreachable and not self.answered:
            self.abort = ConfigError(f"cannot reach {self.url}: {reason}; nothing was delivered")
            return
        if status is None:
            self.summary.transport_errors += 1
        self._done(status)
        self._fail(delivery.line, reason)

    def _done(self, status: int | None) -> None:
        self.summary.sent += 1
        if status is not None:
            self.summary.statuses[status] += 1
        if self.every and self.summary.sent % self.every == 0:
            elapsed = time.monotonic() - self.started
            rate = self.summary.sent / elapsed if elapsed > 0 else 0.0
            failed = len(self.summary.failed)
            self.out.write(f"replay: {self.summary.sent} sent, {failed} failed ({rate:.0f}/s)\n")
            self.out.flush()

    def _fail(self, line: int, reason: str) -> None:
        self.summary.failed.append(FailedLine(line, reason))
        self.out.write(f"replay: line {line}: {reason}\n")
        self.out.flush()


def _transport_reason(exc: httpx.TransportError) -> str:
    detail = str(exc) or "no detail"
    return f"{type(exc).__name__} ({detail})"


def _answer_reason(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    text = error if isinstance(error, str) else response.text[:100].replace("\n", " ")
    return f"HTTP {response.status_code} {text}".rstrip()
