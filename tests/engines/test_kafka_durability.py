"""Durability on the kafka engine: what the broker acknowledged survives the broker's death."""

import os
import signal
import time

import httpx
import pytest

from tests.conftest import kafka_engine
from tests.reliability.up_process import UpProcess, body_of
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def _new_pid(up: UpProcess, role: str, old: int, timeout: float = 120.0) -> int | None:
    def new() -> int | None:
        pid = up.children().get(role)
        return pid if pid is not None and pid != old else None

    return eventually(new, timeout=timeout)


def test_kill_9_of_the_kafka_jvm_under_up_loses_no_acknowledged_message(tmp_path):
    """300 answered, the JVM killed, 600 more (spooled until `up` restarts it on its log): all
    900 in `messages`, each once, and the worker was not restarted (its state is on the log)."""
    kafka_engine()
    up = UpProcess(tmp_path, tmp_path / "data", "up-kafka", MESSAGEHOOKS_BROKER_ENGINE="kafka").start()
    try:
        up.wait_ready(timeout=180)
        with httpx.Client() as client:
            first = up.post(range(0, 300), client)
            broker, worker = up.children()["broker"], up.children()["worker"]
            os.kill(broker, signal.SIGKILL)
            second = up.post(range(300, 900), client)
        assert _new_pid(up, "broker", broker) is not None
        up.wait_ready(timeout=180)  # the spool is forwarded to the restarted broker
        expected = {body_of(i) for i in range(900)}
        found = up.wait_bodies(expected, timeout=180)
        time.sleep(1.5)  # a late duplicate commit would show now
        found = up.bodies()
        figures = {
            "answered_first": dict(first),
            "answered_second": dict(second),
            "lost": len(expected - set(found)),
            "duplicated": sum(n - 1 for n in found.values()),
        }
        assert first == {200: 300}, figures
        assert set(second) <= {200, 202}, figures
        assert (figures["lost"], figures["duplicated"]) == (0, 0), figures
        assert up.children().get("worker") == worker, "the worker rode out the broker's restart"
        assert "kafka broker started again on its log" in up.logs()
        assert up.stop() == 0
    finally:
        up.stop()
