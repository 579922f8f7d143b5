"""Ports a process must own, checked before it starts anything.

A server that cannot bind its port must not go on: a second stack on a taken broker port once
reached the first stack's broker, joined its consumer groups and wrote its records into the
wrong data dir. So `up` checks every port of the stack once, at the top, and each server binds
its own port before anything else; a taken port is a `PortUnavailable` naming the port, the
setting that moves it and, when /proc tells, the process that holds it.
"""

import errno
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from messagehooks.errors import PortUnavailable
from messagehooks.settings import ENV_PREFIX, Settings

_TCP_LISTEN = "0A"
"""The LISTEN state in /proc/net/tcp."""


@dataclass(frozen=True, slots=True)
class Listener:
    """A port one of our servers listens on, and the setting (env var, flag) that moves it."""

    name: str
    host: str
    port: int
    env: str
    flag: str

    @property
    def setting(self) -> str:
        """How an operator moves this port, e.g. ``MESSAGEHOOKS_BROKER_PORT or --broker-port``."""
        return f"{ENV_PREFIX}{self.env} or {self.flag}"


def broker_listener(settings: Settings, flag: str = "--broker-port") -> Listener:
    """The embedded broker's port (loopback only, like the broker)."""
    return Listener("embedded broker", "127.0.0.1", settings.broker_port, "BROKER_PORT", flag)


def ingest_listener(settings: Settings) -> Listener:
    """The ingest's HTTP port."""
    return Listener("ingest", settings.host, settings.port, "PORT", "--port")


def worker_metrics_listener(settings: Settings) -> Listener:
    """The stream worker's Prometheus port (port 0: the worker serves no metrics)."""
    port = settings.worker_metrics_port
    return Listener("worker metrics", settings.host, port, "WORKER_METRICS_PORT", "--worker-metrics-port")


def sink_metrics_listener(settings: Settings) -> Listener:
    """The dataset sink's Prometheus port (port 0: the sink serves no metrics)."""
    port = settings.sink_metrics_port
    return Listener("sink metrics", settings.host, port, "SINK_METRICS_PORT", "--sink-metrics-port")


def stack_listeners(settings: Settings) -> list[Listener]:
    """Every port `messagehooks up` must own: broker (when embedded), ingest, metrics (unless 0)."""
    listeners = [broker_listener(settings)] if settings.embedded else []
    listeners.append(ingest_listener(settings))
    listeners += [x for x in (worker_metrics_listener(settings), sink_metrics_listener(settings)) if x.port]
    return listeners


def ensure_free(listeners: Iterable[Listener]) -> None:
    """Check that each port can be bound now, and that no two servers want the same one.

    Raises:
        PortUnavailable: the first port that is taken, reserved twice or cannot be bound.
    """
    seen: dict[int, Listener] = {}
    for listener in listeners:
        other = seen.get(listener.port)
        if other is not None:
            raise PortUnavailable(
                f"port {listener.port} is set for both the {other.name} ({ENV_PREFIX}{other.env}) and "
                f"the {listener.name} ({ENV_PREFIX}{listener.env}); move one: {listener.setting}"
            )
        seen[listener.port] = listener
        bind(listener).close()


def bind(listener: Listener) -> socket.socket:
    """A socket bound to the listener's host and port and listening, for the server to serve on.

    SO_REUSEADDR as uvicorn, Tansu and http.server set it: a port in TIME_WAIT is free, one
    with a listener is not.

    Raises:
        PortUnavailable: the port is taken (naming who holds it, when known) or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET  # as uvicorn chooses
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listener.host, listener.port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise PortUnavailable(unavailable_message(listener, exc)) from exc
    return sock


def unavailable_message(listener: Listener, exc: OSError) -> str:
    """One line: the port, why it cannot be had, who holds it (if known) and how to move it."""
    where = f"port {listener.port} ({listener.host}) for the {listener.name}"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {exc.strerror or exc}; set {ENV_PREFIX}HOST or --host"
    if exc.errno != errno.EADDRINUSE:
        return f"cannot listen on {where}: {exc.strerror or exc}; set {listener.setting}"
    holder = port_holder(listener.port)
    held = f"held by {holder}" if holder else "held by another process"
    return f"{where} is already in use ({held}); set {listener.setting} to a free port"


def port_holder(port: int, proc: Path = Path("/proc")) -> str | None:
    """``pid N: command line`` of a process listening on TCP `port`, best effort (Linux /proc).

    None when unknown: not Linux, or the holder belongs to another user (its fds are hidden).
    """
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            fds = list((pid_dir / "fd").iterdir())
            if any(os.readlink(fd) in targets for fd in fds):
                return f"pid {pid_dir.name}: {_command_line(pid_dir)}"
        except OSError:
            continue  # another user's process, or one that just exited
    return None


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _command_line(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    words = [w.decode(errors="replace") for w in raw.split(b"\0") if w]
    if words:
        words[0] = os.path.basename(words[0])  # the program's name, not its install path
    text = " ".join(" ".join(words).split()) or "?"  # one line, whatever the arguments hold
    return text if len(text) <= 120 else text[:117] + "..."
