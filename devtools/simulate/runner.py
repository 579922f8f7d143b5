"""`simulate`: POST the schedule's messages at their time, as Landbot's MessageHooks do.

One message per POST with Landbot's headers, a failed delivery retried with the same body the
way Landbot does, until the duration, the chat budget, a stop or an unreachable ingest ends it.
Time comes from a `Clock` the caller passes (the real one by default): tests give a fake one
whose sleeps return at once, so minutes of traffic take milliseconds.
"""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TextIO

import httpx

from devtools.simulate.options import SimulationOptions
from devtools.simulate.schedule import schedule
from devtools.simulate.script import ChatScript, Scripted

RETRY_GAPS = (5.0, 10.0, 15.0, 20.0, 25.0)
"""Landbot's gaps between retries of a failed delivery (about 6 attempts over ~75 s)."""


class Clock(Protocol):
    """Where the simulator's time comes from: the wall clock (seconds) and a way to wait."""

    def time(self) -> float:
        """Seconds since the epoch: send times and message timestamps are in it."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` of this clock's time have passed."""
        ...


class RealClock:
    """`time.time` and `asyncio.sleep`."""

    def time(self) -> float:
        """`time.time()`."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """`asyncio.sleep(seconds)`."""
        await asyncio.sleep(seconds)


REAL_CLOCK = RealClock()


@dataclass
class SimulationSummary:
    """What a simulation sent, what its chats did, and why it stopped."""

    chats: int = 0
    messages: int = 0
    posts: int = 0
    retries: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    escalations: int = 0
    dropoffs: Counter[str] = field(default_factory=Counter)
    returning: int = 0
    stopped: str = ""
    """Why the traffic ended: duration reached, chat budget reached, interrupted, ingest unreachable."""

    def started(self, script: ChatScript) -> None:
        """Count a chat that starts."""
        self.chats += 1
        self.escalations += script.escalated
        self.returning += script.returning
        if script.dropped_at:
            self.dropoffs[script.dropped_at] += 1

    @property
    def delivered_all(self) -> bool:
        """Whether every message it sent got a 2xx, and it did not stop on an unreachable ingest."""
        return self.failed == 0 and not self.stopped.startswith(UNREACHABLE)

    def line(self) -> str:
        """One line for humans."""
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"simulate: {self.chats} chats, {self.messages} messages in {self.posts} POSTs ({statuses}), "
            f"{self.retries} retries, {self.failed} failed; {self.escalations} escalations, "
            f"{sum(self.dropoffs.values())} drop-offs, {self.returning} returning customers"
        )


@dataclass
class _Reach:
    """Whether the ingest answers: when it last gave a 2xx, and the failure since, if any."""

    clock: Clock
    last_ok: float
    failure: str | None = None

    def ok(self) -> None:
        self.last_ok, self.failure = self.clock.time(), None

    def failed(self, what: str) -> None:
        self.failure = what

    def unreachable(self, give_up_after: float | None) -> str | None:
        """The stop reason once nothing but failures came back for `give_up_after` seconds."""
        silent = self.clock.time() - self.last_ok
        if give_up_after is None or self.failure is None or silent < give_up_after:
            return None
        return f"{UNREACHABLE} (no 2xx answer for {silent:.0f} s; last: {self.failure})"


UNREACHABLE = "ingest unreachable"


async def simulate(
    options: SimulationOptions,
    url: str,
    *,
    token: str | None = None,
    out: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int = 32,
    delivered: dict[str, int] | None = None,
    stop: threading.Event | None = None,
    stopped_wait: float | None = None,
    clock: Clock = REAL_CLOCK,
) -> SimulationSummary:
    """POST the chats' messages at about `options.rate` messages/s until one of the stop reasons.

    The reasons: `duration` reached, the chat budget reached (every message of every chat sent),
    `stop` set (interrupted: a test ends its traffic after its faults; the CLI on SIGTERM), or the
    ingest unreachable for `give_up_after`. One line says when and which, then the summary.
    Once `stop` is set, the deliveries in flight get `stopped_wait` seconds (None: Landbot's retry
    window, as at the end of `duration`: a test ends its traffic with the retries it owes).
    `delivered`, if given, maps the `_raw.uuid` of every message that got a 2xx to that status (tests).
    `clock` gives the time (send times, timestamps, the stop reasons) and the waits between sends
    and retries; the deliveries still in flight at the end get their wait in real seconds.
    """
    summary = SimulationSummary()
    started = clock.time()
    deadline = None if options.duration is None else started + options.duration
    reach = _Reach(clock, started)

    def interrupted() -> str | None:
        if stop is not None and stop.is_set():
            return "interrupted"
        return reach.unreachable(options.give_up_after)

    headers = {"User-Agent": "landbot/webhooks", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    sent = 0
    async with httpx.AsyncClient(headers=headers, timeout=options.timeout, transport=transport) as client:
        for send_at, item in schedule(options, started, until=deadline, on_start=summary.started):
            if deadline is not None and max(send_at, clock.time()) >= deadline:
                summary.stopped = f"duration reached ({options.duration:g} s)"
                break  # what is due later (a returning visit) is not waited for, not sent
            if reason := await _sleep_until(clock, send_at, interrupted) or await _take_slot(
                slots, interrupted
            ):
                summary.stopped = reason
                break
            deliver = _deliver(client, url, item, options, summary, reach, delivered, clock)
            task = asyncio.create_task(_released(deliver, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            if sent % 500 == 0:
                out.write(f"simulate: {sent} messages sent\n")
        else:
            summary.stopped = (
                f"chat budget reached ({options.chats} chats, every message sent)"
                if options.chats is not None and summary.chats >= options.chats
                else f"duration reached ({options.duration:g} s; no chat starts before its end)"
            )
        out.write(
            f"simulate: stopped at {_clock(clock)} after {clock.time() - started:.0f} s: {summary.stopped}\n"
        )
        if tasks:
            if summary.stopped.startswith(UNREACHABLE):
                wait = CUT_SHORT_WAIT  # their retries would fail too
            elif summary.stopped == "interrupted" and stopped_wait is not None:
                wait = stopped_wait
            else:
                wait = _retry_window(options)
            if summary.retries:
                out.write(
                    f"simulate: up to {wait:.0f} s for {len(tasks)} deliveries Landbot would still retry\n"
                )
            await asyncio.wait(tasks, timeout=wait)
            unfinished = list(tasks)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
    out.write(summary.line() + "\n")
    return summary


CUT_SHORT_WAIT = 3.0
"""Seconds a simulation that gave up on the ingest, or one the CLI stops (`up` stops it within 10),
gives its deliveries in flight; otherwise they get Landbot's retry window."""


def _retry_window(options: SimulationOptions) -> float:
    return max(5.0, sum(RETRY_GAPS) * options.retry_scale + 10)


def _clock(clock: Clock) -> str:
    return datetime.fromtimestamp(clock.time()).astimezone().isoformat(timespec="seconds")


async def _sleep_until(clock: Clock, when: float, interrupted: Callable[[], str | None]) -> str | None:
    """Sleep until `when` (yielding at least once), in short steps; a stop reason cuts it short."""
    while True:
        if reason := interrupted():
            return reason
        left = when - clock.time()
        await clock.sleep(min(max(left, 0.0), WAIT_STEP))
        if left <= WAIT_STEP:
            return interrupted()


async def _take_slot(slots: asyncio.Semaphore, interrupted: Callable[[], str | None]) -> str | None:
    """Take a delivery slot; while all are busy, look at the stop reasons every `WAIT_STEP`."""
    while slots.locked():
        getter = asyncio.ensure_future(slots.acquire())
        done, _ = await asyncio.wait({getter}, timeout=WAIT_STEP)
        if getter in done:
            return None
        getter.cancel()
        try:
            await getter
            return None  # it got the slot as it was being cancelled
        except asyncio.CancelledError:
            pass
        if reason := interrupted():
            return reason
    await slots.acquire()  # a slot is free: at once
    return None


WAIT_STEP = 0.05
"""Seconds between looks at the clock, the free delivery slots and the stop reasons."""


async def _released(delivery: Awaitable[None], slots: asyncio.Semaphore) -> None:
    try:
        await delivery
    finally:
        slots.release()


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    item: Scripted,
    options: SimulationOptions,
    summary: SimulationSummary,
    reach: _Reach,
    delivered: dict[str, int] | None,
    clock: Clock,
) -> None:
    """One message, one POST; a non-2xx or no answer is retried with the same body and trace."""
    summary.messages += 1
    body = httpx.Request("POST", url, json={"messages": [item.message]}).content
    for attempt, gap in enumerate((0.0, *RETRY_GAPS)):
        if attempt:
            summary.retries += 1
            await clock.sleep(gap * options.retry_scale)
        summary.posts += 1
        try:
            response = await client.post(url, content=body, headers={"sentry-trace": item.trace})
        except httpx.TransportError as exc:
            reach.failed(f"{type(exc).__name__} from {url}")
            continue
        summary.statuses[response.status_code] += 1
        if response.is_success:
            reach.ok()
            if delivered is not None:
                delivered[item.message["_raw"]["uuid"]] = response.status_code
            return
        reach.failed(f"{response.status_code} from {url}")
    summary.failed += 1
