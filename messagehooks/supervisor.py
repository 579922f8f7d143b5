"""`messagehooks up`: broker, ingest, stream worker and dataset sink as children, stopped as one.

Children run in their own process groups so that Ctrl-C reaches only this supervisor, which
then stops them in order (ingest first, so nothing is accepted that cannot be published;
the sink after the worker, so it commits the worker's last outputs; broker last) with a
deadline, and leaves no process behind.
"""

import asyncio
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

from messagehooks.broker import EmbeddedBroker, die_with_parent
from messagehooks.kafka import ensure_project_topics
from messagehooks.settings import ENV_PREFIX, Settings

logger = logging.getLogger(__name__)

STOP_DEADLINE = 10.0


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
    return env


def spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
    """Start ``python -m messagehooks ARGS`` in its own process group."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "messagehooks", *args],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,  # only prctl: safe before exec
    )
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


def run_stack(settings: Settings) -> int:
    """Run the whole pipeline until Ctrl-C / SIGTERM or until a child dies; returns an exit code."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with ExitStack() as stack:
        if settings.embedded:
            broker = stack.enter_context(EmbeddedBroker(settings.broker_port))
            logger.info("embedded broker", extra={"bootstrap": broker.bootstrap})
        asyncio.run(ensure_project_topics(settings))
        env = child_environment(settings)
        children = [
            spawn("ingest", ["ingest"], env),
            spawn("worker", ["worker"], env),
            spawn("sink", ["sink"], env),
        ]
        stack.callback(stop_children, children)
        base = f"http://{_loopback(settings.host)}:{settings.port}"
        if wait_healthy(f"{base}/healthz", children[0].process):
            hook = settings.hooks[0].name
            sys.stderr.write(
                f"\nmessagehooks is up: POST {base}/hooks/{hook}  (broker {settings.bootstrap}, "
                f"data in {settings.data_dir}/) - Ctrl-C stops everything\n\n"
            )
        while not stop.wait(0.2):
            dead = [c for c in children if c.process.poll() is not None]
            if dead:
                logger.error("%s exited with code %s: stopping", dead[0].name, dead[0].process.returncode)
                return 1
    return 0


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - mapping, not binding
