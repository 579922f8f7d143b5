"""Apache Kafka (KRaft, broker and controller in one JVM) as the project's own broker.

Unlike the embedded Tansu broker it keeps its log on disk, under ``{data_dir}/kafka``: topics,
committed offsets and Faust's changelogs survive a restart. The jars come from Maven Central at
set-up time (`make venv` runs ``mvn`` on kafka/pom.xml into ``.venv/kafka/libs``); nothing is
downloaded here.
"""

import base64
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Self

from devtools.tansu import BrokerProcess, api_versions_round_trip, cluster_id, die_with_parent, free_port
from messagehooks.engines import KAFKA_VERSION, MIN_JAVA, default_libs, jars_present, java_major
from messagehooks.errors import BrokerUnavailable, ConfigError, PortUnavailable
from messagehooks.ports import port_holder

logger = logging.getLogger(__name__)

STARTED_LINE = "Kafka Server started"

BROKER_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "inter.broker.listener.name": "PLAINTEXT",
    # One node: every internal topic has one replica.
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # A first join does not wait 3 s for more members; a crashed member's partitions move in
    # seconds (the project's default session timeout is 2 s; Kafka's floor would be 6 s).
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    # Topics are created by the project (`messagehooks topics`), never by a typo in a consumer.
    "auto.create.topics.enable": "false",
}
"""Settings of the single-node broker that do not depend on ports or paths (compose uses them too)."""

JVM_OPTIONS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    # Two cores shared with the ingest, the worker and the sink: keep the JVM's own threads few.
    "-XX:ParallelGCThreads=1",
    "-XX:ConcGCThreads=1",
    "-XX:CICompilerCount=2",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)

_LOG4J_CONFIG = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64 (Kafka refuses a leading '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class KafkaBroker(BrokerProcess):
    """A single-node Apache Kafka on loopback, its log under `home`; use as a context manager."""

    kind = "kafka broker"
    stop_timeout = 30.0  # a clean shutdown flushes the log

    def __init__(
        self,
        home: Path,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        libs: Path | None = None,
        heap: str = "512m",
        wait_previous: float = 60.0,
    ) -> None:
        super().__init__(port, host)
        self.home = home
        self.wait_previous = wait_previous
        self.libs = libs or default_libs()
        self.heap = heap
        self.cluster_id: str | None = None

    @property
    def log_path(self) -> Path:
        """The broker's own log (warnings and errors, and its start line)."""
        return self.home / "broker.log"

    def properties(self, controller_port: int) -> dict[str, str]:
        """The full server.properties for this start."""
        return {
            **BROKER_PROPERTIES,
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.quorum.voters": f"1@{self.host}:{controller_port}",
            "log.dirs": str(self.home / "data"),
        }

    def start(self, ready_timeout: float = 60.0) -> Self:
        """Format the storage on first use, start the JVM and wait until it answers a Kafka request.

        Raises:
            ConfigError: no Java 17+ or no jars (with what to run to get them).
            BrokerUnavailable: the broker exited or did not answer within `ready_timeout`.
        """
        self._check_runtime()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        self._wait_for_previous(config, self.wait_previous)
        config.write_text("".join(f"{k}={v}\n" for k, v in self.properties(free_port()).items()))
        (self.home / "log4j2.properties").write_text(_LOG4J_CONFIG)
        self.cluster_id = self._format(config)
        with self.log_path.open("ab") as log:
            self._process = self._java(["kafka.Kafka", str(config)], log)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                holder = port_holder(self.port)
                taken = f"port {self.port} is held by {holder}; " if holder else ""
                raise BrokerUnavailable(
                    f"Apache Kafka exited with code {code}: {taken}see {self.log_path} "
                    "(set MESSAGEHOOKS_BROKER_PORT or --broker-port to move it)"
                )
            if api_versions_round_trip(self.host, self.port):
                # Ready only if the broker answering is ours: alive, and our storage's cluster id.
                answered = cluster_id(self.host, self.port)
                if answered == self.cluster_id and self._process.poll() is None:
                    logger.info("kafka broker ready", extra={"bootstrap": self.bootstrap, "pid": self.pid})
                    return self
                if answered is not None and answered != self.cluster_id:
                    raise self._not_ours(answered)
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"Apache Kafka did not answer on {self.bootstrap} in {ready_timeout:.0f} s")

    def _not_ours(self, answered: str) -> PortUnavailable:
        """Another cluster answers on our port: never take it for the broker started here."""
        self.stop()
        holder = port_holder(self.port) or "another process"
        return PortUnavailable(
            f"port {self.port} answers as Kafka cluster {answered!r}, not the broker started here "
            f"(cluster {self.cluster_id!r}): it is held by {holder}; "
            "set MESSAGEHOOKS_BROKER_PORT or --broker-port to a free port"
        )

    def _wait_for_previous(self, config: Path, timeout: float) -> None:
        """Let a broker still running on this storage finish its shutdown (it holds the log's lock).

        A killed `up` leaves its JVM a few seconds of clean shutdown (it gets SIGTERM when its
        parent dies); another stack on the same data dir is refused with its pid.
        """
        deadline = time.monotonic() + timeout
        while (pids := brokers_on(config)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pids:
            raise BrokerUnavailable(
                f"another Apache Kafka runs on {self.home} (pid {', '.join(map(str, pids))}); "
                "stop it, or use another MESSAGEHOOKS_DATA_DIR"
            )

    def _check_runtime(self) -> None:
        major = java_major()
        if major is None or major < MIN_JAVA:
            found = "no java on PATH" if major is None else f"Java {major}"
            raise ConfigError(f"the kafka engine needs Java {MIN_JAVA}+ ({found}); or use --engine tansu")
        if not jars_present(self.libs):
            raise ConfigError(
                f"no Apache Kafka {KAFKA_VERSION} jars in {self.libs}: run `make venv` (needs Maven), "
                "or set MESSAGEHOOKS_KAFKA_LIBS; or use --engine tansu"
            )

    def _format(self, config: Path) -> str:
        """The cluster id in the storage, formatting it first if this is its first start."""
        meta = self.home / "data" / "meta.properties"
        if not meta.is_file():
            cluster_id = new_cluster_id()
            with self.log_path.open("ab") as log:
                formatter = self._java(
                    ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)], log
                )
                if formatter.wait(120) != 0:
                    raise BrokerUnavailable(f"formatting {self.home / 'data'} failed; see {self.log_path}")
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
        raise BrokerUnavailable(f"{meta} names no cluster.id")

    def _java(self, args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        command = [
            shutil.which("java") or "java",
            f"-Xms{min_heap(self.heap)}",
            f"-Xmx{self.heap}",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]
        return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            command,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # only prctl: safe before exec
            env=os.environ.copy(),
        )


def brokers_on(config: Path) -> list[int]:
    """PIDs of Kafka JVMs started with `config` (from /proc; empty where there is none)."""
    wanted = f"kafka.Kafka\0{config}".encode()
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if wanted in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


def min_heap(heap: str) -> str:
    """The initial heap: a quarter of the maximum, so an idle dev broker stays small."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", heap)
    if match is None:
        raise ConfigError(f"MESSAGEHOOKS_KAFKA_HEAP must look like 512m or 1g, got {heap!r}")
    value, unit = int(match.group(1)), match.group(2) or ""
    return f"{max(value // 4, 1)}{unit}"
