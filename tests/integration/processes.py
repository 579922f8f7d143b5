"""Real processes for integration tests: `python -m messagehooks ingest|worker` children."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from devtools.tansu import free_port
from tests.support.poll import eventually


def pipeline_env(
    broker_vars: dict[str, str], prefix: str, data_dir: Path, *, gap: float, lateness: float, partitions: int
) -> dict[str, str]:
    """The variables of an ingest, a worker and a sink sharing topics, groups and a data dir.

    `broker_vars`: tests.conftest.broker_env of the broker; `prefix`: unique per test (Tansu
    freezes a group's settings, so topics and groups must not be reused).
    """
    return {
        **broker_vars,
        "MESSAGEHOOKS_TOPIC_PREFIX": f"{prefix}.",
        "MESSAGEHOOKS_PARTITIONS": str(partitions),
        "MESSAGEHOOKS_DATA_DIR": str(data_dir),
        "MESSAGEHOOKS_WORKER_ID": f"w{prefix}",
        "MESSAGEHOOKS_SINK_GROUP": f"s{prefix}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(gap),
        "MESSAGEHOOKS_ALLOWED_LATENESS": str(lateness),
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.3",
    }


class ChildProcess:
    """`python -m messagehooks COMMAND` in its own process group, output to a log file."""

    command = ""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        # Metrics endpoints off unless a test asks: processes of parallel tests would share ports.
        self.env = {
            **os.environ,
            "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",
            "MESSAGEHOOKS_SINK_METRICS_PORT": "0",
            **env,
        }
        self.env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "messagehooks", self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def memory_kb(self) -> dict[str, int]:
        """The process's resident memory now (VmRSS) and at its peak so far (VmHWM), in kB."""
        assert self.process is not None
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0])
        return fields


class WorkerProcess(ChildProcess):
    """A stream worker (Faust)."""

    command = "worker"

    def start(self) -> "WorkerProcess":
        self.spawn()
        return self


class IngestProcess(ChildProcess):
    """The ingest served by uvicorn."""

    command = "ingest"

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(env, log_path)
        self.port = int(env.get("MESSAGEHOOKS_PORT") or free_port())
        self.env["MESSAGEHOOKS_PORT"] = str(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "IngestProcess":
        self.spawn()
        if eventually(self._healthy, timeout=timeout, interval=0.05):
            return self
        raise TimeoutError("ingest did not become healthy")

    def _healthy(self) -> bool:
        if not self.alive():
            raise RuntimeError(f"ingest exited: {self.logs()[-2000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until /readyz says ready (broker reachable, topics present, spool empty)."""
        if not eventually(
            lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200,
            timeout=timeout,
            interval=0.1,
        ):
            raise TimeoutError(f"ingest not ready: {httpx.get(f'{self.url}/readyz').text}")


class SinkProcess(ChildProcess):
    """A dataset sink (topics -> Delta tables)."""

    command = "sink"

    def start(self) -> "SinkProcess":
        self.spawn()
        return self


def listening_addresses(port: int) -> set[str]:
    """The local addresses TCP sockets LISTEN on at `port`, read from /proc/net/tcp (Linux)."""
    found: set[str] = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port and len(address) == width:
                found.add(_address(address))
    return found


def _address(hex_address: str) -> str:
    # /proc prints each 32-bit word of the address in host (little-endian) byte order.
    raw = b"".join(bytes.fromhex(hex_address[i : i + 8])[::-1] for i in range(0, len(hex_address), 8))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


class PortHolder:
    """Another process listening on a TCP port (a free one it picks), until `close`."""

    _CODE = (
        "import socket, sys\n"
        "s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen()\n"
        "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
    )

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", self._CODE, host], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.port = int(self.process.stdout.readline())

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        self.process.stdin.close()
        self.process.stdout.close()
        self.process.wait(10)
