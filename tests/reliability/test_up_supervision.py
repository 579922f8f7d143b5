"""`messagehooks up` supervises its children: a crash is restarted, nothing answered 2xx is lost.

Each test drives the real `python -m messagehooks up` (its own broker of the engine the test
names, ingest, worker, sink) on free ports and a tmp data dir, kills a child with SIGKILL, and
compares the `messages` table with what the ingest acknowledged, exactly, after a deadline.
Figures go to RELIABILITY_FIGURES (default the test's tmp dir) for docs/RELIABILITY.md.
"""

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from cli.supervisor import GaveUp, Stack, child_environment
from messagehooks.restarts import Backoff, RestartBudget
from messagehooks.settings import Settings
from tests.conftest import kafka_engine
from tests.reliability.up_process import UpProcess, body_of
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def _figures(tmp_path: Path, name: str, figures: dict) -> None:
    out = Path(os.environ.get("RELIABILITY_FIGURES", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(figures, indent=2))


def _wait_for_new_pid(up: UpProcess, role: str, old: int, timeout: float = 60.0) -> int | None:
    """The PID of the `role` child up started after `old` died (None: none within `timeout`)."""

    def new() -> int | None:
        pid = up.children().get(role)
        return pid if pid is not None and pid != old else None

    return eventually(new, timeout=timeout, give_up=lambda: not up.alive())


def _stop_order(log: str) -> list[str]:
    """The order in which up's last stop ended its parts, from its log."""
    tail = log[log.rfind('"stopped ingest"') - 200 :] if '"stopped ingest"' in log else ""
    marks = {
        "ingest": ['"stopped ingest"'],
        "worker": ['"stopped worker"'],
        "sink": ['"stopped sink"'],
        "broker": ['"embedded broker stopped"', '"kafka broker stopped"'],
    }
    found = {name: tail.find(mark) for name, some in marks.items() for mark in some if tail.find(mark) >= 0}
    return sorted(found, key=found.__getitem__)


@pytest.mark.parametrize("engine", ["tansu", "kafka"])
def test_kill_9_of_the_sink_is_restarted_and_loses_nothing(tmp_path, engine):
    if engine == "kafka":
        kafka_engine()
    up = UpProcess(tmp_path, tmp_path / "data", MESSAGEHOOKS_BROKER_ENGINE=engine).start()
    try:
        up.wait_ready(timeout=120)
        with httpx.Client() as client:
            statuses = up.post(range(0, 150), client)
            sink = up.children()["sink"]
            os.kill(sink, signal.SIGKILL)  # rows buffered, not yet committed, die with it
            statuses += up.post(range(150, 300), client)
            restarted = _wait_for_new_pid(up, "sink", sink)
        expected = {body_of(i) for i in range(300)}
        # The restarted sink catches up on its own (on a loaded machine a restart takes seconds,
        # more than the drain at stop: on Tansu what is unwritten at the stop is gone with it).
        eventually(
            lambda: expected <= set(up.bodies()), timeout=120, interval=1, give_up=lambda: not up.alive()
        )
        code = up.stop()
        found = up.bodies()
        log = up.logs()
        figures = {
            "fault": "kill -9 of the sink under up",
            "engine": engine,
            "posts": sum(statuses.values()),
            "statuses": dict(statuses),
            "rows": sum(found.values()),
            "lost": len(expected - set(found)),
            "duplicated": sum(n - 1 for n in found.values()),
            "sink_restarted": restarted is not None,
            "stop_order": _stop_order(log),
            "exit_code": code,
        }
        _figures(tmp_path, f"up-kill-9-sink-{engine}", figures)
        assert statuses == {200: 300}, figures
        assert (figures["lost"], figures["duplicated"], figures["rows"]) == (0, 0, 300), figures
        assert "sink exited with code -9: restarting it in 0.5 s" in log
        assert figures["stop_order"] == ["ingest", "worker", "sink", "broker"], figures
        assert code == 0, figures
    finally:
        up.stop()


def test_kill_9_of_the_broker_then_a_restart_of_up_keeps_every_message(tmp_path):
    """600 answered 200, the broker killed, 1,200 more (spooled, then to the fresh broker), up
    stopped with SIGTERM and started again: all 1,800 are in `messages`, each exactly once.

    Tansu only: about the in-memory broker coming back empty (topics created again, the worker
    restarted). Apache Kafka comes back with its log and the worker rides it out: the kill -9
    of its JVM under `up` is tests/engines/test_kafka_durability.py."""
    data = tmp_path / "fresh" / "data"
    up = UpProcess(tmp_path, data, "up-1", MESSAGEHOOKS_BROKER_ENGINE="tansu").start()
    again: UpProcess | None = None
    try:
        up.wait_ready()
        with httpx.Client() as client:
            first = up.post(range(0, 600), client)
            committed = up.wait_bodies({body_of(i) for i in range(600)}, timeout=90)
            broker, worker = up.children()["broker"], up.children()["worker"]
            os.kill(broker, signal.SIGKILL)  # the in-memory broker and all it held are gone
            second = up.post(range(600, 1800), client)
        new_broker = _wait_for_new_pid(up, "broker", broker)
        new_worker = _wait_for_new_pid(up, "worker", worker)  # its state lived on the old broker
        up.wait_ready(timeout=90)  # the fresh broker has the topics and the spool is forwarded
        first_code = up.stop()
        again = UpProcess(tmp_path, data, "up-2", MESSAGEHOOKS_BROKER_ENGINE="tansu").start()
        again.wait_ready()
        expected = {body_of(i) for i in range(1800)}
        found = again.wait_bodies(expected, timeout=120)
        time.sleep(1.5)  # a late duplicate commit would show now
        found = again.bodies()
        figures = {
            "fault": "kill -9 of the broker under up, then SIGTERM and a new up",
            "answered_first": dict(first),
            "answered_second": dict(second),
            "committed_before_the_kill": sum(committed.values()),
            "rows": sum(found.values()),
            "lost": len(expected - set(found)),
            "duplicated": sum(n - 1 for n in found.values()),
            "broker_restarted": new_broker is not None,
            "worker_restarted": new_worker is not None,
            "first_up_exit_code": first_code,
        }
        _figures(tmp_path, "up-kill-9-broker-restart", figures)
        assert first == {200: 600}, figures
        assert set(second) <= {200, 202}, figures
        assert sum(second.values()) == 1200, figures
        assert (figures["lost"], figures["duplicated"], figures["rows"]) == (0, 0, 1800), figures
        assert "starting it again in 0.5 s" in up.logs()
        assert figures["broker_restarted"], figures
        assert figures["worker_restarted"], figures
        assert first_code == 0, figures
    finally:
        up.stop()
        if again is not None:
            again.stop()


def test_a_child_that_keeps_dying_makes_up_give_up_with_one_line(tmp_path):
    """Restarted with backoff until the budget runs out; then GaveUp names the child and count."""
    settings = Settings(kafka_bootstrap="127.0.0.1:9", data_dir=tmp_path)  # no broker needed
    stack = Stack(settings, child_environment(settings), None)
    child = stack.start("sink", ["no-such-command"])  # exits 2 at once, every time
    child.budget = RestartBudget(max_restarts=3, window=60, backoff=Backoff(initial=0.05))
    starts = 1
    deadline = time.monotonic() + 60
    gave_up: GaveUp | None = None
    while gave_up is None and time.monotonic() < deadline:
        before = stack.children["sink"].process
        try:
            stack.check(time.monotonic())
        except GaveUp as exc:
            gave_up = exc
        starts += stack.children["sink"].process is not before
        time.sleep(0.02)
    stack.stop()
    assert starts == 4  # the first start and three restarts
    assert str(gave_up) == (
        "sink died 4 times within 60 s (last exit code 2): giving up and stopping everything; see its log"
    )
