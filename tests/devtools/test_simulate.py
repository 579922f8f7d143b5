"""The traffic simulator: reproducible, statistically what its options say, delivered like Landbot."""

import asyncio
import contextlib
import dataclasses
import http.server
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import main
from devtools.simulate import DROPOFF, LANGUAGES, SimulationOptions, chat_script, schedule, simulate
from features.batch import build_dataset
from messagehooks.errors import ConfigError
from messagehooks.settings import Hook
from messagehooks.validation import parse_body
from tests.conftest import broker_env
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess
from tests.support.clock import FakeClock

CHATS = 2000


@pytest.fixture(scope="module")
def scripts():
    options = SimulationOptions(seed=7, escalation=0.2, returning=0.15, pii=0.4, dropoff=1.5)
    return options, [chat_script(options, i) for i in range(CHATS)]


def test_same_seed_same_traffic_other_seed_other_traffic():
    a, b = SimulationOptions(seed=1), SimulationOptions(seed=2)
    assert [chat_script(a, i).messages for i in range(20)] == [chat_script(a, i).messages for i in range(20)]
    assert [chat_script(a, i).messages for i in range(20)] != [chat_script(b, i).messages for i in range(20)]


def _sender(item) -> str | None:
    return item.message.get("sender", {}).get("type")


def test_rates_follow_the_options(scripts):
    options, chats = scripts
    past_dialog = [c for c in chats if c.dropped_at != "dialog"]
    escalation = sum(c.escalated for c in past_dialog) / len(past_dialog)
    assert escalation == pytest.approx(options.escalation, abs=0.03)
    assert sum(c.returning for c in chats) / CHATS == pytest.approx(options.returning, abs=0.03)
    assert sum(c.dropped_at == "dialog" for c in chats) / CHATS == pytest.approx(
        DROPOFF["dialog"] * options.dropoff, abs=0.03
    )
    # Every other prompt: the share of the (non-escalating) customers who saw it and left there.
    for prompt in ("name", "email", "order", "anything_else"):
        words = {LANGUAGES[language][prompt] for language in LANGUAGES}
        shown = [
            c
            for c in chats
            if not c.escalated and any(m.message["data"]["body"] in words for m in c.messages)
        ]
        rate = sum(c.dropped_at == prompt for c in shown) / len(shown)
        assert rate == pytest.approx(DROPOFF[prompt] * options.dropoff, abs=0.05), prompt
    asked_email = [c for c in chats if not c.escalated and c.dropped_at not in ("dialog", "name", "email")]
    answered_email = sum("@example.com" in json.dumps(c.messages[6].message) for c in asked_email)
    assert answered_email / len(asked_email) == pytest.approx(options.pii, abs=0.05)


def test_types_roles_and_languages_are_all_there(scripts):
    _, chats = scripts
    messages = [m for c in chats for m in c.messages]
    types = Counter(m.message["type"] for m in messages)
    roles = Counter(_sender(m) for m in messages)
    assert set(types) == {"text", "dialog", "button", "image", "iframe", "event"}
    assert {"bot", "customer", "agent", "sys", None} == set(roles)
    assert roles["bot"] > roles["customer"] > roles["agent"] > roles["sys"] > 0
    assert {c.language for c in chats} == set(LANGUAGES)


def test_escalations_are_assign_agent_unassign_and_returning_chats_come_back_later(scripts):
    options, chats = scripts
    for chat in chats:
        actions = [m.message.get("action") for m in chat.messages if m.message["type"] == "event"]
        assert actions == (["assign", "unassign"] if chat.escalated else [])
        if chat.escalated:
            kinds = [_sender(m) or m.message["action"] for m in chat.messages]
            assert kinds.index("assign") < kinds.index("agent") < kinds.index("unassign")
        times = [m.at for m in chat.messages]
        assert times == sorted(times)
        if chat.returning:
            assert max(b - a for a, b in itertools.pairwise(times)) >= options.return_after


def test_every_message_passes_the_ingest_with_its_role(scripts):
    _, chats = scripts
    for chat in chats[:300]:
        for item in chat.messages:
            body = json.dumps({"messages": [{**item.message, "timestamp": 1.79e9}]}).encode()
            parsed = parse_body(body, hook=Hook("s"), received_at=0.0, request_id="", max_messages=10)
            assert not parsed.rejections
            (message,) = parsed.messages
            assert message.role == (_sender(item) or "unknown") or message.type == "event"
            assert message.chat_id == str(chat.chat)


def test_bad_options_are_clear_errors():
    with pytest.raises(ConfigError, match="probability"):
        SimulationOptions(escalation=1.5)
    with pytest.raises(ConfigError, match="languages"):
        SimulationOptions(languages=("xx",))
    with pytest.raises(ConfigError, match="must exceed the conversation gap"):
        SimulationOptions(conversation_gap=120, returning_after=100)  # would continue, not return


def test_a_failed_delivery_is_retried_with_the_same_body_and_trace():
    seen: list[tuple[bytes, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.content, request.headers["sentry-trace"]))
        assert request.headers["authorization"] == "Token t0k"
        assert request.headers["user-agent"] == "landbot/webhooks"
        return httpx.Response(503 if len(seen) == 1 else 200)

    options = SimulationOptions(chats=1, rate=1000, duration=10, time_scale=0.001, retry_scale=0.001)
    out = io.StringIO()
    summary = asyncio.run(
        simulate(
            options,
            "http://sim/hooks/x",
            token="t0k",
            out=out,
            transport=httpx.MockTransport(handler),
            clock=FakeClock(),
        )
    )
    first_body, first_trace = seen[0]
    retried = [body for body, trace in seen if trace == first_trace]
    assert retried == [first_body, first_body]  # the retry: same bytes, same sentry-trace
    assert len({trace for _, trace in seen}) == summary.messages
    assert summary.retries == 1
    assert summary.failed == 0
    assert summary.statuses[503] == 1
    assert "1 retries" in out.getvalue()


def test_a_visit_due_after_the_duration_is_not_sent():
    """The simulation waited for a returning customer's visit due after `duration` (two hours later
    at --time-scale 1) and sent it: `--duration 1` ran for as long as the visit took to come."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(m["_raw"]["uuid"] for m in json.loads(request.content)["messages"])
        return httpx.Response(200)

    # Every customer comes back, 3 s (scaled) after the first visit: after the 1 s the run lasts.
    options = SimulationOptions(
        chats=2, rate=1000, duration=1, seed=4, returning=1.0, returning_after=3000, time_scale=0.001
    )
    out = io.StringIO()
    summary = asyncio.run(
        simulate(
            options, "http://sim/hooks/x", out=out, transport=httpx.MockTransport(handler), clock=FakeClock()
        )
    )
    assert re.search(r"simulate: stopped at \S+ after \d+ s: duration reached \(1 s", out.getvalue())
    scripts = [chat_script(options, i) for i in range(summary.chats)]
    first_visits = {m.message["_raw"]["uuid"] for c in scripts for m in c.messages if m.at < 3000}
    assert summary.chats == 2
    assert all(c.returning for c in scripts)
    assert set(sent) == first_visits
    assert summary.messages == len(first_visits) < sum(len(c.messages) for c in scripts)


@pytest.mark.integration
def test_simulated_traffic_reaches_the_messages_topic(broker, unique, tmp_path):
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"sim{unique}.",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
    }
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    try:
        ingest.wait_ready()
        options = SimulationOptions(
            chats=20, rate=60, duration=20, seed=3, time_scale=0.01, returning_after=60
        )
        summary = asyncio.run(simulate(options, f"{ingest.url}/hooks/default", out=io.StringIO()))
    finally:
        ingest.stop()
    assert summary.failed == 0
    assert set(summary.statuses) == {200}
    expected = {
        m.message["_raw"]["uuid"] for i in range(summary.chats) for m in chat_script(options, i).messages
    }
    assert summary.messages == len(expected)
    records = asyncio.run(read_topic(broker.bootstrap, f"sim{unique}.messages", expect=len(expected)))
    assert {r["message_id"] for r in records} == expected


@pytest.mark.integration
def test_each_cli_run_sends_new_ids_unless_a_seed_is_given(capsys):
    """With seed 0 by default, a second `make run` re-sent the first one's message ids, which the
    dataset drops as repeats: it seemed not to grow. A fresh seed per run, printed to repeat it."""
    received: list[str] = []
    runs = []
    with _hook_server(lambda body: received.extend(m["_raw"]["uuid"] for m in body["messages"])) as url:
        for seed in ([], [], ["--seed", "5"], ["--seed", "5"]):
            received.clear()
            args = ["simulate", "--url", url, "--chats", "3", "--rate", "200", "--time-scale", "0.001"]
            # A returning visit comes four gaps (2 h) later: after the run, whose chats take < 5 s.
            assert main([*args, "--duration", "5", *seed]) == 0
            runs.append(set(received))
    assert all(runs)
    assert runs[0].isdisjoint(runs[1])
    assert runs[2] == runs[3]
    seeds = re.findall(r"simulate: seed (\d+)", capsys.readouterr().err)
    assert seeds[2:] == ["5", "5"]
    assert len(seeds) == 4
    assert seeds[0] != seeds[1]


@contextlib.contextmanager
def _hook_server(on_post: Callable[[dict], object]) -> Iterator[str]:
    """A loopback HTTP server answering 200 to every POST (its JSON body to `on_post`); its hook URL."""

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            on_post(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/default"
    finally:
        server.shutdown()
        server.server_close()


def test_setting_stop_ends_the_traffic_before_its_duration():
    """Tests under faults end their traffic once the faults are over, not at a guessed duration."""
    stop = threading.Event()
    posted: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request.content)
        if len(posted) == 5:
            stop.set()
        return httpx.Response(200)

    options = SimulationOptions(chats=40, rate=200, duration=600, time_scale=0.01)
    everything = sum(len(chat_script(options, i).messages) for i in range(options.chats))
    summary = asyncio.run(
        simulate(
            options,
            "http://sim/hooks/x",
            out=io.StringIO(),
            transport=httpx.MockTransport(handler),
            stop=stop,
            clock=FakeClock(),
        )
    )
    assert 5 <= summary.messages < 10 < everything  # what was in flight when it was set, no more
    assert summary.messages == len(posted)
    assert summary.stopped == "interrupted"


def test_a_chat_budget_ends_with_its_reason_once_every_message_is_sent():
    options = SimulationOptions(chats=3, rate=1000, duration=None, time_scale=0.001, returning=0.0)
    out = io.StringIO()
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    summary = asyncio.run(
        simulate(options, "http://sim/hooks/x", out=out, transport=transport, clock=FakeClock())
    )
    assert summary.messages == sum(len(chat_script(options, i).messages) for i in range(3))
    assert summary.stopped == "chat budget reached (3 chats, every message sent)"
    assert f": {summary.stopped}\n" in out.getvalue()
    assert summary.delivered_all


def test_an_unreachable_ingest_stops_the_traffic_with_its_reason():
    """It used to retry every message for 75 s each, sending on, and say nothing until the end."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    options = SimulationOptions(duration=None, rate=200, time_scale=0.01, retry_scale=0.01, give_up_after=0.5)
    out = io.StringIO()
    summary = asyncio.run(
        simulate(
            options, "http://sim/hooks/x", out=out, transport=httpx.MockTransport(refuse), clock=FakeClock()
        )
    )
    assert summary.stopped.startswith("ingest unreachable (no 2xx answer for ")
    assert "ConnectError from http://sim/hooks/x" in summary.stopped
    assert re.search(r"simulate: stopped at \S+ after \d+ s: ingest unreachable", out.getvalue())
    assert not summary.delivered_all
    assert set(summary.statuses) == set()


def _scheduled(options: SimulationOptions, horizon: float, start: float = 1.7e9):
    """The (send time, message) pairs of `options`' traffic due before `start + horizon`."""
    out = []
    for send_at, item in schedule(options, start):
        if send_at >= start + horizon:
            return out
        out.append((send_at, item))
    return out


def test_the_rate_holds_over_a_long_compressed_run_with_new_and_returning_chats():
    """With `up`'s old budget of 1,000 chats the traffic stopped after ~30 minutes; without a
    budget, ten hours (compressed 100x) keep the rate in every hour, returning customers included."""
    gap, rate, hour = 18.0, 100.0, 36.0  # a 30-minute gap and an hour, both 100x shorter
    options = SimulationOptions(rate=rate, time_scale=0.01, conversation_gap=gap, seed=3, returning=0.2)
    sent = _scheduled(options, 10 * hour)
    counts = Counter(int((send_at - 1.7e9) // hour) for send_at, _ in sent)
    assert sorted(counts) == list(range(10))
    for index, count in counts.items():
        assert count == pytest.approx(rate * hour, rel=0.2), index  # ~240 chats: 3 sigma
    first_seen: dict[int, float] = {}
    returns_per_hour: Counter[int] = Counter()
    for _, item in sent:
        chat, ts = item.message["_raw"]["chat"], item.message["timestamp"]
        if chat not in first_seen:
            first_seen[chat] = ts
        elif ts - first_seen[chat] > 4 * gap and item.message.get("sender", {}).get("type") == "customer":
            returns_per_hour[int((ts - 1.7e9) // hour)] += 1  # a returning visit's button
    chats_per_hour = len(first_seen) / 10
    for index in range(2, 10):  # after the first returns are due
        assert returns_per_hour[index] == pytest.approx(0.2 * chats_per_hour * 0.9, rel=0.5), index


@settings(max_examples=25, deadline=None)
@given(
    gap=st.floats(min_value=5, max_value=3600),
    time_scale=st.sampled_from([0.001, 0.01, 0.1, 1.0]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_the_pipeline_cuts_each_chat_where_its_script_does(gap, time_scale, seed):
    """Answers come within the gap, a drop-off or a return stays silent longer: the batch oracle
    (the stream's definition of conversations) finds exactly the script's conversations, and a
    customer who dropped off left an unanswered pair at the prompt they dropped at."""
    options = SimulationOptions(
        conversation_gap=gap, time_scale=time_scale, seed=seed, returning=0.5, dropoff=2.0, rate=50
    )
    scripts = {str(s.chat): s for s in (chat_script(options, i) for i in range(12))}
    for script in scripts.values():
        times = [m.at * time_scale for m in script.messages]
        pauses = [b - a for a, b in itertools.pairwise(times)]
        long_pauses = [p for p in pauses if p > gap]
        assert len(long_pauses) == script.returning  # only the return, which the gap splits
        assert all(p <= gap / 2 for p in pauses if p <= gap)
    messages = []
    for _, item in schedule(dataclasses.replace(options, chats=12), 1.7e9):
        body = json.dumps({"messages": [item.message]}).encode()
        messages += parse_body(body, hook=Hook("s"), received_at=0.0, request_id="", max_messages=1).messages
    pairs, conversations = build_dataset(messages, conversation_gap=gap)
    per_chat = Counter(c.chat_id for c in conversations)
    assert per_chat == {chat: 1 + s.returning for chat, s in scripts.items()}
    for chat, script in scripts.items():
        first = min((c for c in conversations if c.chat_id == chat), key=lambda c: c.start_ts)
        assert first.escalated == script.escalated
        if script.dropped_at:
            last = max(
                (p for p in pairs if p.conversation_id == first.conversation_id), key=lambda p: p.pair_index
            )
            assert not last.answered
            assert LANGUAGES[script.language][script.dropped_at] in last.prompt_text


@pytest.mark.integration
def test_the_cli_says_when_and_why_it_stops_on_sigterm(tmp_path):
    """`up` stops its simulator with SIGTERM: it used to die without a word."""
    received = threading.Event()
    env = {**os.environ, "MESSAGEHOOKS_CONVERSATION_GAP": "60"}
    with _hook_server(lambda body: received.set()) as url:
        command = [sys.executable, "-m", "messagehooks", "simulate", "--url", url, "--rate", "50"]
        process = subprocess.Popen([*command, "--duration", "0"], env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert received.wait(30), "the simulator sent nothing"
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
        finally:
            process.kill()
    assert process.returncode == 0, err
    assert re.search(r"simulate: stopped at \S+ after \d+ s: interrupted\n", err), err
    assert re.search(r"simulate: \d+ chats, \d+ messages in \d+ POSTs \(200: \d+\)", err), err
