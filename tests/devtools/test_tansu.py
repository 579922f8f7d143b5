import os
import signal
import subprocess
import sys

import pytest

from devtools import tansu as broker_module
from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker, api_versions_round_trip, cluster_id, free_port
from messagehooks.errors import PortUnavailable
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

_PARENT = """
import sys
from devtools.tansu import EmbeddedBroker
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
    """EmbeddedBroker's own start and stop, so Tansu only (tests/engines/test_kafka_engine.py
    starts and stops KafkaBroker)."""
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
    """EmbeddedBroker's child process, so Tansu only (tests/engines/test_kafka_engine.py has the
    same for the Kafka JVM)."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    broker_pid = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    parent.stdin.close()
    parent.stdout.close()
    if not eventually(lambda: _dead(broker_pid), timeout=10, interval=0.05):
        os.kill(broker_pid, signal.SIGKILL)
        pytest.fail("the broker outlived its SIGKILLed parent")


def test_cluster_id_is_the_one_the_broker_was_started_with(broker):
    assert cluster_id("127.0.0.1", broker.port) == broker.cluster_id
    assert cluster_id("127.0.0.1", free_port(), timeout=0.5) is None


@pytest.mark.skipif(sys.platform != "linux", reason="names the holder from /proc (Linux only)")
def test_start_on_a_port_another_broker_holds_names_it(broker):
    """An EmbeddedBroker (Tansu) started on the port of another stack's broker, of either engine."""
    second = EmbeddedBroker(broker.port)
    with pytest.raises(PortUnavailable) as raised:
        second.start()
    program = "java" if isinstance(broker, KafkaBroker) else "tansu"
    assert f"port {broker.port} " in str(raised.value)
    assert f"pid {broker.pid}: {program}" in str(raised.value)
    assert "MESSAGEHOOKS_BROKER_PORT" in str(raised.value)
    assert second.pid is None  # nothing left running
    assert cluster_id("127.0.0.1", broker.port) == broker.cluster_id  # the other broker is untouched


def test_readiness_refuses_a_broker_of_another_cluster(broker, tmp_path, monkeypatch):
    """Our process alive, a Kafka answer on the port, but another cluster's: not ready, ever.

    A stand-in that lives but never listens plays our broker losing the race for the port.
    """
    stand_in = tmp_path / "stand-in-broker"
    stand_in.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    stand_in.chmod(0o755)
    monkeypatch.setattr(broker_module, "broker_binary", lambda: str(stand_in))
    ours = EmbeddedBroker(broker.port)
    with pytest.raises(PortUnavailable, match="answers as Kafka cluster") as raised:
        ours.start(ready_timeout=10)
    assert repr(broker.cluster_id) in str(raised.value)
    assert repr(ours.cluster_id) in str(raised.value)
    assert ours.pid is None  # the stand-in was stopped
