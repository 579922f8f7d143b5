"""Taken ports fail fast: the real CLI against real listeners, and the /proc lookup of holders."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from devtools.kafka_broker import KafkaBroker
from devtools.tansu import free_port
from messagehooks.errors import PortUnavailable
from messagehooks.metrics import serve
from messagehooks.ports import Listener, bind, ensure_free, port_holder
from tests.conftest import broker_env, kafka_engine
from tests.integration.processes import PortHolder, listening_addresses
from tests.support.poll import eventually

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc (Linux only)")

CLI_TIMEOUT = 45.0
"""Seconds a CLI run may take: a check that works answers at once; one that fails runs on."""


@pytest.fixture
def holder():
    """Another process listening on a free loopback port."""
    held = PortHolder()
    yield held
    held.close()


def _stack_env(tmp_path: Path, engine: str = "tansu", **ports: int) -> dict[str, str]:
    """Environment of a CLI run on `engine`: every port of the stack free, except those given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGEHOOKS_")}
    env["MESSAGEHOOKS_DATA_DIR"] = str(tmp_path / "data")
    env["MESSAGEHOOKS_BROKER_ENGINE"] = engine
    for name in ("BROKER_PORT", "PORT", "WORKER_METRICS_PORT", "SINK_METRICS_PORT"):
        env[f"MESSAGEHOOKS_{name}"] = str(ports.get(name) or free_port())
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "messagehooks", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("messagehooks: error:")]
    return line


TAKEN_PORTS = [
    (["broker"], "BROKER_PORT", "MESSAGEHOOKS_BROKER_PORT or --port"),
    (["ingest"], "PORT", "MESSAGEHOOKS_PORT or --port"),
    (["worker"], "WORKER_METRICS_PORT", "MESSAGEHOOKS_WORKER_METRICS_PORT or --worker-metrics-port"),
    (["sink"], "SINK_METRICS_PORT", "MESSAGEHOOKS_SINK_METRICS_PORT or --sink-metrics-port"),
    (["up", "--no-simulate"], "BROKER_PORT", "MESSAGEHOOKS_BROKER_PORT or --broker-port"),
    (["up", "--no-simulate"], "PORT", "MESSAGEHOOKS_PORT or --port"),
    (
        ["up", "--no-simulate"],
        "WORKER_METRICS_PORT",
        "MESSAGEHOOKS_WORKER_METRICS_PORT or --worker-metrics-port",
    ),
    (["up", "--no-simulate"], "SINK_METRICS_PORT", "MESSAGEHOOKS_SINK_METRICS_PORT or --sink-metrics-port"),
]
"""A command, the port taken from it, and the settings its error names."""


def _with_engines(rows: list[tuple[list[str], str, str]]) -> list[tuple[list[str], str, str, str]]:
    """Each row on Tansu; the commands that start a broker (`broker`, `up`) on Kafka too."""
    return [
        (*row, engine)
        for row in rows
        for engine in (("tansu", "kafka") if row[0][0] in ("broker", "up") else ("tansu",))
    ]


@linux_only
@pytest.mark.integration
@pytest.mark.parametrize(("args", "taken", "setting", "engine_name"), _with_engines(TAKEN_PORTS))
def test_a_taken_port_is_one_line_naming_port_setting_and_holder(
    args, taken, setting, engine_name, holder, tmp_path
):
    if engine_name == "kafka":
        kafka_engine()
    result = _cli(args, _stack_env(tmp_path, engine_name, **{taken: holder.port}))
    line = _one_error_line(result)
    assert f"port {holder.port} " in line
    assert setting in line
    assert f"held by pid {holder.pid}: python" in line
    assert not (tmp_path / "data").exists()  # nothing started, nothing written


@linux_only
@pytest.mark.integration
def test_up_on_the_broker_port_of_another_stack_stops_before_joining_it(broker, tmp_path):
    """The reported defect: a second `up` took the first stack's broker for its own."""
    env = _stack_env(tmp_path, broker_env(broker)["MESSAGEHOOKS_BROKER_ENGINE"])  # a stack like ours
    result = _cli(["up", "--no-simulate", "--broker-port", str(broker.port)], env)
    line = _one_error_line(result)
    program = "java" if isinstance(broker, KafkaBroker) else "tansu"
    assert f"port {broker.port} (127.0.0.1) for the embedded broker is already in use" in line
    assert f"held by pid {broker.pid}: {program}" in line
    assert "MESSAGEHOOKS_BROKER_PORT or --broker-port" in line
    assert not (tmp_path / "data").exists()


@pytest.mark.integration
def test_up_refuses_one_port_for_two_servers(tmp_path):
    port = free_port()
    result = _cli(
        ["up", "--no-simulate", "--port", str(port), "--worker-metrics-port", str(port)], _stack_env(tmp_path)
    )
    line = _one_error_line(result)
    assert f"port {port} is set for both the ingest (MESSAGEHOOKS_PORT)" in line
    assert "the worker metrics (MESSAGEHOOKS_WORKER_METRICS_PORT)" in line


@linux_only
@pytest.mark.integration
@pytest.mark.parametrize(
    ("command", "variable"), [("worker", "WORKER_METRICS_PORT"), ("sink", "SINK_METRICS_PORT")]
)
def test_metrics_servers_listen_on_the_configured_host_only(command, variable, broker, tmp_path):
    port = free_port()
    env = _stack_env(tmp_path, **{variable: port}) | broker_env(broker)  # they start; nothing is produced
    env["MESSAGEHOOKS_TOPIC_PREFIX"] = f"ports{port}."
    env["MESSAGEHOOKS_WORKER_ID"] = env["MESSAGEHOOKS_SINK_GROUP"] = f"ports{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "messagehooks", command],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def metrics_served() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        answered = eventually(
            metrics_served, timeout=30, interval=0.1, give_up=lambda: process.poll() is not None
        )
        assert answered, f"{command} served no metrics on 127.0.0.1:{port}"
        assert listening_addresses(port) == {"127.0.0.1"}  # MESSAGEHOOKS_HOST's default, not 0.0.0.0
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@linux_only
@pytest.mark.integration
def test_serve_refuses_a_taken_port_and_serves_a_free_one(holder):
    registry = CollectorRegistry()
    with pytest.raises(PortUnavailable, match=rf"port {holder.port} .*held by pid {holder.pid}: python"):
        serve(registry, Listener("sink metrics", "127.0.0.1", holder.port, "SINK_METRICS_PORT", "--x"))
    port = free_port()
    server = serve(registry, Listener("sink metrics", "127.0.0.1", port, "SINK_METRICS_PORT", "--x"))
    assert server is not None
    try:
        assert listening_addresses(port) == {"127.0.0.1"}
    finally:
        server.shutdown()
        server.server_close()
    assert serve(registry, Listener("sink metrics", "127.0.0.1", 0, "SINK_METRICS_PORT", "--x")) is None


@linux_only
@pytest.mark.integration
def test_port_holder_names_the_listening_process_and_none_for_a_free_port(holder):
    found = port_holder(holder.port)
    program = os.path.basename(sys.executable)
    assert found is not None
    assert found.startswith(f"pid {holder.pid}: {program} -c import socket, sys s = socket.socket();")
    assert len(found.splitlines()) == 1  # the holder's code has newlines: the error stays one line
    assert len(found) <= len(f"pid {holder.pid}: ") + 120
    assert port_holder(free_port()) is None


def test_bind_gives_the_socket_and_a_second_bind_is_refused():
    listener = Listener("ingest", "127.0.0.1", free_port(), "PORT", "--port")
    with bind(listener) as sock:
        assert sock.getsockname() == ("127.0.0.1", listener.port)
        with pytest.raises(PortUnavailable, match=rf"port {listener.port} \(127.0.0.1\) for the ingest"):
            ensure_free([listener])
    ensure_free([listener])  # closed: free again


def test_an_unknown_host_names_the_host_setting():
    listener = Listener("ingest", "no-such-host.invalid", free_port(), "PORT", "--port")
    with pytest.raises(PortUnavailable, match="MESSAGEHOOKS_HOST or --host"):
        bind(listener)


_STATES = st.sampled_from(["01", "06", "0A"])  # ESTABLISHED, TIME_WAIT, LISTEN


@given(
    wanted=st.integers(1, 65535),
    sockets=st.lists(st.tuples(st.sampled_from(["tcp", "tcp6"]), st.integers(1, 65535), _STATES), max_size=6),
)
def test_port_holder_finds_exactly_the_listeners_of_the_port(wanted, sockets, tmp_path_factory):
    """Against a /proc built from random sockets: a holder iff some socket LISTENs on the port."""
    proc = tmp_path_factory.mktemp("proc")
    (proc / "net").mkdir()
    tables: dict[str, list[str]] = {"tcp": [], "tcp6": []}
    for inode, (table, port, state) in enumerate(sockets, start=1000):
        address = "0100007F" if table == "tcp" else "0" * 32
        remote_and_counters = "00000000:0000 {} 00000000:00000000 00:00000000 00000000  1000 0"
        tables[table].append(f"   0: {address}:{port:04X} {remote_and_counters.format(state)} {inode}")
        fd_dir = proc / str(inode) / "fd"  # one process per socket; its pid is the inode
        fd_dir.mkdir(parents=True)
        (fd_dir / "3").symlink_to(f"socket:[{inode}]")
        (proc / str(inode) / "cmdline").write_bytes(b"/usr/bin/server\0--port\0" + str(port).encode())
    for table, lines in tables.items():
        (proc / "net" / table).write_text(
            "  sl  local_address rem_address   st ...\n" + "\n".join(lines) + "\n"
        )
    listeners = {
        str(i) for i, (_, port, state) in enumerate(sockets, start=1000) if port == wanted and state == "0A"
    }
    found = port_holder(wanted, proc)
    if not listeners:
        assert found is None
    else:
        assert found is not None
        pid, command = found.removeprefix("pid ").split(": ", 1)
        assert pid in listeners
        assert command == f"server --port {wanted}"
