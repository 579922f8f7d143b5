"""`messagehooks up`: broker, ingest, stream worker and dataset sink as supervised children.

Children run in their own process groups so that Ctrl-C reaches only this supervisor. A child
that dies is started again after a delay doubling from 0.5 s to 10 s; one that dies more than
`RestartBudget.max_restarts` times within a minute makes `up` give up with one line and stop.
The embedded broker keeps everything in memory: when it dies it is started again on the same
port with a fresh cluster id, the project topics are created again and the worker is restarted
(its state lived on the old broker); the ingest spools to disk meanwhile and the sink reads the
new topics from their start. A stop drains in order - simulator, ingest (nothing accepted that
cannot be published), worker, sink (given time to commit what the worker produced) - and the
broker goes last, so nothing acknowledged is left only in its memory.
"""

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from aiokafka.errors import KafkaError
from rich.console import Console
from rich.live import Live

from cli.status import StatusBoard
from devtools.brokers import OwnBroker, own_broker
from devtools.tansu import die_with_parent
from messagehooks.engines import resolve
from messagehooks.errors import BrokerUnavailable, GaveUp
from messagehooks.kafka import ensure_project_topics
from messagehooks.ports import ensure_free, stack_listeners
from messagehooks.restarts import RestartBudget
from messagehooks.settings import (
    DEMO_CONVERSATION_GAP as DEMO_CONVERSATION_GAP,
)  # `up`'s, declared with the gap
from messagehooks.settings import ENV_PREFIX, Hook, Settings, open_hook_warnings

logger = logging.getLogger(__name__)

STOP_DEADLINE = 10.0
SINK_STOP_DEADLINE = 30.0
"""The sink drains the topics and commits on SIGTERM (`dataset.sink.DRAIN_SECONDS` + a commit)."""
STOP_ORDER = ("simulate", "ingest", "worker", "sink")
STATUS_LINE_INTERVAL = 10.0
"""Seconds between status log lines when stderr is not a terminal."""


@dataclass
class Child:
    """A supervised process: how to start it again, and its crashes so far."""

    name: str
    process: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)
    budget: RestartBudget = field(default_factory=RestartBudget)
    restart_at: float | None = None
    """When a crashed child is due to start again (None while it runs)."""


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every child: the parent's plus the settings chosen on the CLI."""
    env = dict(os.environ)
    env[f"{ENV_PREFIX}HOST"] = settings.host
    env[f"{ENV_PREFIX}PORT"] = str(settings.port)
    env[f"{ENV_PREFIX}DATA_DIR"] = str(settings.data_dir)
    env[f"{ENV_PREFIX}BROKER_PORT"] = str(settings.broker_port)
    env[f"{ENV_PREFIX}WORKER_METRICS_PORT"] = str(settings.worker_metrics_port)
    env[f"{ENV_PREFIX}SINK_METRICS_PORT"] = str(settings.sink_metrics_port)
    env[f"{ENV_PREFIX}BROKER_ENGINE"] = settings.broker_engine
    env[f"{ENV_PREFIX}CONVERSATION_GAP"] = str(settings.conversation_gap)  # worker and simulator agree
    return env


def with_conversation_gap(
    settings: Settings, *, simulating: bool, environ: Mapping[str, str]
) -> tuple[Settings, str]:
    """The settings with the gap the stack runs with, and that gap as the panel shows it.

    A gap set in MESSAGEHOOKS_CONVERSATION_GAP is kept; otherwise simulated traffic gets
    `DEMO_CONVERSATION_GAP`, so that a first run has labels in minutes.
    """
    if f"{ENV_PREFIX}CONVERSATION_GAP" in environ:
        return settings, f"{settings.conversation_gap:g} s ({ENV_PREFIX}CONVERSATION_GAP)"
    if simulating:
        demo = dataclasses.replace(settings, conversation_gap=DEMO_CONVERSATION_GAP)
        return demo, f"{DEMO_CONVERSATION_GAP:g} s (demo, while simulating)"
    return settings, f"{settings.conversation_gap:g} s"


def spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path | None = None) -> Child:
    """Start ``python -m messagehooks ARGS`` in its own process group (output to a file in `log_dir`)."""
    output = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        output = (log_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "messagehooks", *args],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,  # only prctl: safe before exec
        stdout=output,
        stderr=output,
    )
    if output is not None:
        output.close()  # the child has its own descriptor
    logger.info("started %s", name, extra={"pid": process.pid})
    return Child(name, process, args)


def stop_children(children: list[Child], deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM each child in order, waiting for it; SIGKILL what outlives its deadline."""
    for child in children:
        stop_child(child, SINK_STOP_DEADLINE if child.name == "sink" else deadline)


def stop_child(child: Child, deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM one child and wait for it; SIGKILL it if it outlives `deadline`."""
    if child.process.poll() is None:
        child.process.send_signal(signal.SIGTERM)
        try:
            child.process.wait(deadline)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s: killing it", child.name, deadline)
            child.process.kill()
            child.process.wait()
    logger.info("stopped %s", child.name, extra={"code": child.process.returncode})


class Stack:
    """The embedded broker and the children, kept running: use as a context manager."""

    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path | None) -> None:
        self.settings = settings
        self.env = env
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}
        self.broker: OwnBroker | None = None
        self.broker_budget = RestartBudget()
        self.engine = settings.broker_engine  # resolved by run_stack: kafka or tansu
        self._broker_restart_at: float | None = None
        self.simulator_exit: int | None = None
        """The simulator's exit code once it has finished (it is not started again)."""

    def __enter__(self) -> Self:
        if self.settings.embedded:
            self.broker = own_broker(self.settings).start()
            self.broker_budget.started(time.monotonic())
            logger.info("own broker", extra={"bootstrap": self.broker.bootstrap, "engine": self.engine})
        try:
            asyncio.run(ensure_project_topics(self.settings))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, name: str, args: list[str]) -> Child:
        """Start a child (or start it again, keeping its crash record)."""
        child = spawn(name, args, self.env, self.log_dir)
        if (before := self.children.get(name)) is not None:
            child.budget = before.budget
        child.budget.started(time.monotonic())
        self.children[name] = child
        return child

    def stop(self) -> None:
        """Drain in order: simulator, ingest, worker, sink (it commits what is left), broker last."""
        stop_children([self.children[name] for name in STOP_ORDER if name in self.children])
        if self.broker is not None:
            self.broker.stop()

    def check(self, now: float) -> None:
        """Restart what died and is due; raises `GaveUp` when something keeps dying."""
        self._check_broker(now)
        for child in list(self.children.values()):
            code = child.process.poll()
            if child.restart_at is None and code is not None:
                if child.name == "simulate":
                    logger.info("the simulator finished (its last lines say why)", extra={"code": code})
                    self.simulator_exit = code
                    del self.children[child.name]  # traffic is optional: the pipeline goes on
                    continue
                delay = child.budget.crashed(now)
                if delay is None:
                    raise GaveUp(self._give_up_line(child.name, child.budget, f"last exit code {code}"))
                logger.error("%s exited with code %s: restarting it in %.1f s", child.name, code, delay)
                child.restart_at = now + delay
            elif child.restart_at is not None and now >= child.restart_at:
                self.start(child.name, child.args)

    def _check_broker(self, now: float) -> None:
        broker = self.broker
        if broker is None:
            return
        if self._broker_restart_at is None:
            code = broker.exit_code
            if code is None:
                return
            self._broker_crashed(now, f"exited with code {code}")
            return
        if now < self._broker_restart_at:
            return
        self._broker_restart_at = None
        fresh = own_broker(self.settings)  # Tansu: a fresh cluster id, a new cluster; Kafka: its log
        try:
            fresh.start()
            asyncio.run(ensure_project_topics(self.settings))
        except (BrokerUnavailable, KafkaError, OSError) as exc:
            fresh.stop()
            self._broker_crashed(now, f"could not start again ({exc})")
            return
        self.broker = fresh
        self.broker_budget.started(now)
        if self.engine == "kafka":
            logger.warning("kafka broker started again on its log: topics, offsets and changelogs kept")
            return
        logger.warning("embedded broker started again (empty): topics created again; restarting the worker")
        worker = self.children.get("worker")
        if worker is not None and worker.restart_at is None:
            stop_child(worker)  # its tables' changelogs died with the old broker
            self.start("worker", worker.args)

    def _broker_crashed(self, now: float, what: str) -> None:
        delay = self.broker_budget.crashed(now)
        if delay is None:
            raise GaveUp(self._give_up_line(f"the {self.engine} broker", self.broker_budget, what))
        logger.error(
            "the %s broker %s: starting it again in %.1f s (the ingest spools meanwhile)",
            self.engine,
            what,
            delay,
        )
        self._broker_restart_at = now + delay

    @staticmethod
    def _give_up_line(name: str, budget: RestartBudget, what: str) -> str:
        return (
            f"{name} died {budget.recent_crashes()} times within {budget.window:.0f} s ({what}): "
            "giving up and stopping everything; see its log"
        )


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> bool:
    """Poll `url` until it answers 200 (False if the process died or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our loopback URL
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False


def run_stack(settings: Settings, *, simulate_rate: float = 0.0) -> int:
    """Run the whole pipeline until Ctrl-C / SIGTERM, restarting what dies; returns an exit code.

    With `simulate_rate` > 0, a traffic simulator posts that many messages/s to the first hook.
    On a terminal a live status panel replaces the children's logs (they go to DATA_DIR/logs/);
    otherwise the logs pass through and a status line is logged every `STATUS_LINE_INTERVAL`.
    Exits 1 when a child (or the broker) keeps dying, after stopping the rest in order.
    """
    ensure_free(stack_listeners(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console = Console(stderr=True)
    log_dir = settings.data_dir / "logs" if console.is_terminal else None
    if settings.embedded:
        engine = resolve(settings)
        logger.info("broker engine: %s (%s)", engine.name, engine.reason)
        settings = dataclasses.replace(settings, broker_engine=engine.name)  # children skip `auto`
    settings, gap = with_conversation_gap(settings, simulating=simulate_rate > 0, environ=os.environ)
    with ExitStack() as exits:
        env = {**child_environment(settings), f"{ENV_PREFIX}READY_NEEDS_SINK": "1"}  # /readyz sees the sink
        stack = exits.enter_context(Stack(settings, env, log_dir))
        for name in ("ingest", "worker", "sink"):
            stack.start(name, [name])
        base = f"http://{_loopback(settings.host)}:{settings.port}"
        hook = settings.hooks[0]
        if wait_healthy(f"{base}/healthz", stack.children["ingest"].process):
            logs = f"; logs in {log_dir}/" if log_dir else ""
            sys.stderr.write(
                f"\nmessagehooks is up: POST {base}/hooks/{hook.name}  (broker {settings.bootstrap}, "
                f"data in {settings.data_dir}/{logs}) - Ctrl-C stops everything\n\n"
            )
            if simulate_rate > 0:
                stack.start("simulate", _simulate_args(base, hook, simulate_rate))
                sys.stderr.write(
                    f"simulating {simulate_rate:g} messages/s until stopped; a conversation closes after "
                    f"its gap of silence: {gap}\n\n"
                )
        board = StatusBoard(
            f"{base}/metrics",
            settings.dataset_root,
            worker_metrics_url(settings),
            warnings=tuple(open_hook_warnings(settings)),  # the ingest logs them to a file under the panel
        )
        board.conversation_gap = gap
        simulator_log = f"{log_dir}/simulate.log" if log_dir else "the log above"
        live = (
            exits.enter_context(Live(board.read().table(), console=console)) if console.is_terminal else None
        )
        next_status = time.monotonic() + (1.0 if live else 2.0)
        while not stop.wait(0.2):
            try:
                stack.check(time.monotonic())
            except GaveUp as exc:
                logger.error("%s", exc)
                sys.stderr.write(f"messagehooks: error: {exc}\n")
                return 1
            if time.monotonic() >= next_status:
                board.simulator = _simulator_state(stack, simulate_rate, simulator_log)
                status = board.read()
                if live is not None:
                    live.update(status.table())
                else:
                    logger.info(status.line())
                next_status = time.monotonic() + (1.0 if live else STATUS_LINE_INTERVAL)
    return 0


def worker_metrics_url(settings: Settings) -> str | None:
    """The worker's Prometheus endpoint, if it serves one."""
    port = settings.worker_metrics_port
    return f"http://{_loopback(settings.host)}:{port}/metrics" if port else None


def _simulate_args(base: str, hook: Hook, rate: float) -> list[str]:
    # Until up stops it: no duration, no chat budget, never giving up on the ingest up restarts.
    # The hook's first token authenticates it, read by the child from the MESSAGEHOOKS_HOOKS it
    # inherits (`--token-of`): a token on a command line is readable by every local user (ps).
    # The gap comes in MESSAGEHOOKS_CONVERSATION_GAP.
    url = f"{base}/hooks/{hook.name}"
    args = ["simulate", "--url", url, "--rate", str(rate), "--duration", "0", "--give-up-after", "0"]
    return args + (["--token-of", hook.name] if hook.tokens else [])


def _simulator_state(stack: Stack, rate: float, log: str) -> str:
    """The simulator as the panel shows it."""
    if "simulate" in stack.children:
        return f"{rate:g} messages/s"
    if stack.simulator_exit is not None:
        return f"stopped (exit {stack.simulator_exit}; why: {log})"
    return "off" if rate <= 0 else "not started"


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding
