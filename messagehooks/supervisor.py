"""`messagehooks up`: broker, ingest, stream worker and dataset sink as children, stopped as one.

Children run in their own process groups so that Ctrl-C reaches only this supervisor, which
then stops them in order (ingest first, so nothing is accepted that cannot be published;
the sink after the worker, so it commits the worker's last outputs; broker last) with a
deadline, and leaves no process behind.
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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live

from messagehooks.broker import die_with_parent
from messagehooks.engines import own_broker, resolve
from messagehooks.kafka import ensure_project_topics
from messagehooks.ports import ensure_free, stack_listeners
from messagehooks.settings import ENV_PREFIX, Hook, Settings
from messagehooks.status import StatusBoard

logger = logging.getLogger(__name__)

STOP_DEADLINE = 10.0
STATUS_LINE_INTERVAL = 10.0
"""Seconds between status log lines when stderr is not a terminal."""


@dataclass
class Child:
    """A supervised process."""

    name: str
    process: subprocess.Popen[bytes]


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
    return env


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
    return Child(name, process)


def stop_children(children: list[Child], deadline: float = STOP_DEADLINE) -> None:
    """SIGTERM each child in order, waiting for it; SIGKILL what outlives the deadline."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(deadline)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %.0f s: killing it", child.name, deadline)
                child.process.kill()
                child.process.wait()
        logger.info("stopped %s", child.name, extra={"code": child.process.returncode})


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
    """Run the whole pipeline until Ctrl-C / SIGTERM or until a child dies; returns an exit code.

    With `simulate_rate` > 0, a traffic simulator posts that many messages/s to the first hook.
    On a terminal a live status panel replaces the children's logs (they go to DATA_DIR/logs/);
    otherwise the logs pass through and a status line is logged every `STATUS_LINE_INTERVAL`.
    """
    ensure_free(stack_listeners(settings))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    console = Console(stderr=True)
    log_dir = settings.data_dir / "logs" if console.is_terminal else None
    with ExitStack() as stack:
        if settings.embedded:
            engine = resolve(settings)
            logger.info("broker engine: %s (%s)", engine.name, engine.reason)
            settings = dataclasses.replace(settings, broker_engine=engine.name)  # children skip `auto`
            broker = own_broker(settings)
            stack.enter_context(broker)
            logger.info("own broker", extra={"bootstrap": broker.bootstrap, "engine": engine.name})
        asyncio.run(ensure_project_topics(settings))
        env = child_environment(settings)
        children = [spawn(name, [name], env, log_dir) for name in ("ingest", "worker", "sink")]
        stack.callback(stop_children, children)
        base = f"http://{_loopback(settings.host)}:{settings.port}"
        hook = settings.hooks[0]
        if wait_healthy(f"{base}/healthz", children[0].process):
            logs = f"; logs in {log_dir}/" if log_dir else ""
            sys.stderr.write(
                f"\nmessagehooks is up: POST {base}/hooks/{hook.name}  (broker {settings.bootstrap}, "
                f"data in {settings.data_dir}/{logs}) - Ctrl-C stops everything\n\n"
            )
            if simulate_rate > 0:
                children.insert(0, spawn("simulate", _simulate_args(base, hook, simulate_rate), env, log_dir))
        board = StatusBoard(f"{base}/metrics", settings.dataset_root, worker_metrics_url(settings))
        live = (
            stack.enter_context(Live(board.read().table(), console=console)) if console.is_terminal else None
        )
        next_status = time.monotonic() + (1.0 if live else 2.0)
        while not stop.wait(0.2):
            for child in [c for c in children if c.process.poll() is not None]:
                if child.name != "simulate":
                    logger.error("%s exited with code %s: stopping", child.name, child.process.returncode)
                    return 1
                logger.info("the simulator finished", extra={"code": child.process.returncode})
                children.remove(child)  # traffic is optional: the pipeline goes on
            if time.monotonic() >= next_status:
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
    # Runs until up stops (a week at most); the hook's first token authenticates it.
    args = ["simulate", "--url", f"{base}/hooks/{hook.name}", "--rate", str(rate), "--duration", "604800"]
    return args + (["--token", str(hook.tokens[0])] if hook.tokens else [])


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding
