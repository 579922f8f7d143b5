import os
import signal
import subprocess
import sys
import time

import pytest

from messagehooks.broker import EmbeddedBroker, api_versions_round_trip, free_port

pytestmark = pytest.mark.integration

_PARENT = """
import sys
from messagehooks.broker import EmbeddedBroker
broker = EmbeddedBroker().start()
print(broker.pid, flush=True)
sys.stdin.read()
"""


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:\tZ") for line in status)  # exited, not yet reaped
    except FileNotFoundError:
        return True


def test_start_answers_kafka_and_stop_frees_the_port():
    port = free_port()
    with EmbeddedBroker(port) as broker:
        assert api_versions_round_trip("127.0.0.1", port)
        pid = broker.pid
    assert not api_versions_round_trip("127.0.0.1", port)
    assert pid is not None
    assert _dead(pid)
    with EmbeddedBroker(port):  # the port can be reused at once
        assert api_versions_round_trip("127.0.0.1", port)


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux-only")
def test_broker_dies_with_a_killed_parent():
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    broker_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdin.close()
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while not _dead(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not _dead(broker_pid):
        os.kill(broker_pid, signal.SIGKILL)
        pytest.fail("the broker outlived its SIGKILLed parent")
