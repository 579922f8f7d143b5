"""The ``messagehooks`` command: broker, ingest, worker, up, tail.

Every flag defaults from its ``MESSAGEHOOKS_*`` variable, named in ``--help``. Errors are one
line on stderr and exit code 2, never a traceback.
"""

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from messagehooks.errors import MessageHooksError
from messagehooks.logging import configure_logging
from messagehooks.settings import ENV_PREFIX, SETTINGS_HELP, Settings, load_settings

logger = logging.getLogger("messagehooks")


def _flag(parser: argparse.ArgumentParser, flag: str, env: str, default: Any, **kwargs: Any) -> None:
    """A flag whose default is the setting's value, with its env var named in --help."""
    help_text = f"{SETTINGS_HELP[env]} (default: %(default)s) [env: {ENV_PREFIX}{env}]"
    parser.add_argument(flag, default=default, help=help_text, **kwargs)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The argument parser; defaults come from `settings` (i.e. from the environment)."""
    parser = argparse.ArgumentParser(
        prog="messagehooks",
        description="Landbot MessageHooks -> Kafka -> turn pairs -> Delta Lake datasets.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = commands.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu)")
    _flag(broker, "--port", "BROKER_PORT", settings.broker_port, type=int, dest="broker_port")

    ingest = commands.add_parser("ingest", help="run the HTTP ingest server (uvicorn)")
    _server_flags(ingest, settings)

    worker = commands.add_parser("worker", help="run a stream worker (Faust); N workers share partitions")
    _flag(worker, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)

    up = commands.add_parser("up", help="run broker (unless KAFKA_BOOTSTRAP is set) + ingest + worker")
    _server_flags(up, settings)
    _flag(up, "--broker-port", "BROKER_PORT", settings.broker_port, type=int)

    tail = commands.add_parser("tail", help="pretty-print the records of a topic")
    tail.add_argument("topic", help="full name (landbot.messages) or short name (messages)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--chat", help="only records keyed by this chat id")
    tail.add_argument("--max", type=int, default=None, help="stop after this many records")
    tail.add_argument("--timeout", type=float, default=None, help="stop after this many idle seconds")
    return parser


def _server_flags(parser: argparse.ArgumentParser, settings: Settings) -> None:
    _flag(parser, "--host", "HOST", settings.host)
    _flag(parser, "--port", "PORT", settings.port, type=int)
    _flag(parser, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)


def _apply(settings: Settings, args: argparse.Namespace) -> Settings:
    fields = {f.name for f in dataclasses.fields(Settings)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return dataclasses.replace(settings, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``messagehooks`` console script."""
    try:
        settings = load_settings(os.environ)
        args = build_parser(settings).parse_args(argv)
        settings = _apply(settings, args)
        configure_logging(settings.log_level)
        command: Callable[[Settings, argparse.Namespace], int] = _COMMANDS[args.command]
        return command(settings, args)
    except MessageHooksError as exc:
        sys.stderr.write(f"messagehooks: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130


def _run_broker(settings: Settings, args: argparse.Namespace) -> int:
    from messagehooks.broker import EmbeddedBroker
    from messagehooks.kafka import ensure_project_topics

    with EmbeddedBroker(settings.broker_port) as broker:
        asyncio.run(ensure_project_topics(settings))
        sys.stderr.write(f"embedded broker on {broker.bootstrap}; Ctrl-C stops it\n")
        _wait_for_signal()
    return 0


def _run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from ingest.app import create_app
    from messagehooks.logging import logging_config

    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # Set explicitly: the asyncio/h11 fallback serves 3x fewer requests (PERFORMANCE.md).
        loop="uvloop",
        http="httptools",
        log_config=logging_config(settings.log_level),
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    uvicorn.Server(config).run()
    return 0


def _run_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.app import run_worker  # faust is slow to import: only here

    return run_worker(settings)


def _run_up(settings: Settings, args: argparse.Namespace) -> int:
    from messagehooks.supervisor import run_stack

    return run_stack(settings)


def _run_tail(settings: Settings, args: argparse.Namespace) -> int:
    from messagehooks.tail import tail

    return asyncio.run(
        tail(
            settings,
            args.topic,
            from_beginning=args.from_beginning,
            chat=args.chat,
            limit=args.max,
            idle_timeout=args.timeout,
            out=sys.stdout,
        )
    )


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "broker": _run_broker,
    "ingest": _run_ingest,
    "worker": _run_worker,
    "up": _run_up,
    "tail": _run_tail,
}
