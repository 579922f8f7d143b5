"""The developer tools' commands: ``simulate``, ``tail`` and ``replay`` (devtools/).

Their flags are per run, except the simulator's time scale (a setting `up` hands it).
"""

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from cli.flags import Commands, setting_flag
from messagehooks.errors import ConfigError
from messagehooks.settings import ENV_PREFIX, Settings


def add_simulate(commands: Commands, settings: Settings) -> None:
    """``messagehooks simulate``."""
    simulate = commands.add_parser("simulate", help="POST realistic Landbot traffic (seeded) to a hook")
    simulate.add_argument(
        "--url", required=True, help="the hook URL, e.g. http://127.0.0.1:8000/hooks/default"
    )
    simulate.add_argument("--rate", type=float, default=5.0, help="messages/s (default: %(default)s)")
    simulate.add_argument("--chats", type=int, default=None, help="most chats to start (default: no limit)")
    simulate.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="seconds to run at most; 0 = until stopped (default: %(default)s)",
    )
    simulate.add_argument(
        "--seed",
        type=int,
        default=None,
        help="same seed, same traffic and message ids (default: a fresh seed, printed at start)",
    )
    token = simulate.add_mutually_exclusive_group()
    token.add_argument("--token", help="sent as 'Authorization: Token TOKEN'")
    token.add_argument(
        "--token-of",
        metavar="HOOK",
        help="send the first token of hook HOOK of MESSAGEHOOKS_HOOKS (how `up` authenticates its "
        "simulator: a secret is never on a command line)",
    )
    simulate.add_argument(
        "--escalation", type=float, default=0.15, help="share of customers who want a human"
    )
    simulate.add_argument(
        "--dropoff", type=float, default=1.0, help="multiplier of the per-prompt drop-off rates"
    )
    simulate.add_argument(
        "--returning", type=float, default=0.10, help="share of customers who come back later"
    )
    simulate.add_argument(
        "--pii", type=float, default=0.25, help="share of customers who type an e-mail/phone"
    )
    setting_flag(simulate, "--time-scale", "simulate_time_scale", settings)
    simulate.add_argument(
        "--returning-after",
        type=float,
        default=None,
        help="seconds until a customer returns (default: 4 x MESSAGEHOOKS_CONVERSATION_GAP; pauses "
        "inside a conversation stay within half of that gap)",
    )
    simulate.add_argument(
        "--give-up-after",
        type=float,
        default=120.0,
        help="stop once the ingest gave no 2xx for this many seconds; 0 = never (default: %(default)s)",
    )


def add_tail(commands: Commands, settings: Settings) -> None:
    """``messagehooks tail``."""
    tail = commands.add_parser("tail", help="pretty-print the records of a topic")
    tail.add_argument("topic", help="full name (landbot.messages) or short name (messages)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--chat", help="only records keyed by this chat id")
    tail.add_argument("--max", type=int, default=None, help="stop after this many records (default: never)")
    tail.add_argument(
        "--timeout", type=float, default=None, help="stop after this many seconds in all (default: never)"
    )


def add_replay(commands: Commands, settings: Settings) -> None:
    """``messagehooks replay``."""
    replay = commands.add_parser("replay", help="POST recorded MessageHook deliveries (JSONL) again")
    replay.add_argument("file", type=Path, help="JSONL: one Landbot body or {body, headers} per line")
    replay.add_argument("--url", required=True, help="where to POST, e.g. http://HOST:PORT/hooks/NAME")
    replay.add_argument("--token", help="sends 'Authorization: Token TOKEN' for lines without one")
    replay.add_argument(
        "--concurrency", type=int, default=1, help="requests in flight; >1 does NOT keep the file order"
    )
    replay.add_argument("--retries", type=int, default=0, help="extra attempts after a non-2xx or no answer")
    replay.add_argument("--retry-delay", type=float, default=0.5, help="seconds between attempts")
    replay.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    replay.add_argument("--progress-every", type=int, default=100, help="a progress line every N lines")


def run_simulate(settings: Settings, args: argparse.Namespace) -> int:
    """Post simulated traffic until its end, a signal, or an ingest that stays down."""
    from devtools.simulate import CUT_SHORT_WAIT, SimulationOptions, simulate

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per POST drowns the summary
    # A fresh seed by default: the same seed sends the same message ids again, which the dataset
    # rightly drops as repeats — a second `make run` would seem to add nothing.
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3), "big")
    sys.stderr.write(f"simulate: seed {seed} (--seed {seed} sends this traffic again)\n")
    options = SimulationOptions(
        chats=args.chats,
        rate=args.rate,
        duration=args.duration or None,
        seed=seed,
        escalation=args.escalation,
        dropoff=args.dropoff,
        returning=args.returning,
        pii=args.pii,
        time_scale=settings.simulate_time_scale,
        returning_after=args.returning_after,
        conversation_gap=settings.conversation_gap,  # `up` sets the one its worker uses
        give_up_after=args.give_up_after or None,
    )
    stop = threading.Event()  # SIGTERM (from `up`) or Ctrl-C: stop sending, say so, summarize
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    summary = asyncio.run(
        simulate(
            options,
            args.url,
            token=simulator_token(settings, args),
            out=sys.stderr,
            stop=stop,
            stopped_wait=CUT_SHORT_WAIT,
        )
    )
    return 0 if summary.delivered_all else 1


def simulator_token(settings: Settings, args: argparse.Namespace) -> str | None:
    """The token the simulator sends: ``--token``, or the first of the hook ``--token-of`` names.

    `up` passes ``--token-of HOOK``: the child reads the token from the MESSAGEHOOKS_HOOKS it
    inherits, so no secret shows in its command line (``ps``, /proc/PID/cmdline).
    """
    if args.token_of is None:
        token: str | None = args.token
        return token
    hook = settings.hook(args.token_of)
    if hook is None or not hook.tokens:
        raise ConfigError(
            f"--token-of {args.token_of}: no hook of that name with a token in {ENV_PREFIX}HOOKS"
        )
    return str(hook.tokens[0])


def run_tail(settings: Settings, args: argparse.Namespace) -> int:
    """Print a topic's records."""
    from devtools.tail import tail

    return asyncio.run(
        tail(
            settings,
            args.topic,
            from_beginning=args.from_beginning,
            chat=args.chat,
            limit=args.max,
            timeout=args.timeout,
            out=sys.stdout,
            err=sys.stderr,
        )
    )


def run_replay(settings: Settings, args: argparse.Namespace) -> int:
    """POST a file of recorded deliveries again."""
    from devtools.replay import replay

    summary = asyncio.run(
        replay(
            args.file,
            args.url,
            out=sys.stdout,
            token=args.token,
            concurrency=args.concurrency,
            retries=args.retries,
            retry_delay=args.retry_delay,
            timeout=args.timeout,
            progress_every=args.progress_every,
        )
    )
    return 0 if summary.ok else 1
