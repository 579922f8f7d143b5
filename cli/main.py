"""The ``messagehooks`` command: broker, ingest, worker, sink, up, tail, dataset, backfill, replay.

A flag that sets a setting defaults from its ``MESSAGEHOOKS_*`` variable and names it in
``--help`` (``[env: …]``); the other flags are per run. Errors are one line on stderr and exit
code 2, never a traceback.
"""

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from messagehooks.errors import ConfigError, MessageHooksError
from messagehooks.logging import configure_logging
from messagehooks.paths import absolute_path, absolute_uri
from messagehooks.settings import ENV_PREFIX, SETTINGS_HELP, Settings, load_settings, require_hooks

logger = logging.getLogger("messagehooks")


def _flag(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    default: Any,
    *,
    inherited: bool = False,
    **kwargs: Any,
) -> None:
    """A flag whose default is the setting's value, with its env var named in --help.

    An `inherited` flag repeats one of the parent command's after a subcommand (``dataset stats
    --data-dir X``): it sets nothing unless given, or it would undo the parent's value.
    """
    shown = str(default).replace("%", "%%") if inherited else "%(default)s"
    help_text = f"{SETTINGS_HELP[env]} (default: {shown}) [env: {ENV_PREFIX}{env}]"
    parser.add_argument(flag, default=argparse.SUPPRESS if inherited else default, help=help_text, **kwargs)


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The argument parser; defaults come from `settings` (i.e. from the environment)."""
    parser = argparse.ArgumentParser(
        prog="messagehooks",
        description="Landbot MessageHooks -> Kafka -> turn pairs -> Delta Lake datasets.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    broker = commands.add_parser("broker", help="run the project's own broker (Apache Kafka or Tansu)")
    _flag(broker, "--port", "BROKER_PORT", settings.broker_port, type=int, dest="broker_port")
    _engine_flag(broker, settings)
    _flag(broker, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)

    ingest = commands.add_parser("ingest", help="run the HTTP ingest server (uvicorn)")
    _server_flags(ingest, settings)

    worker = commands.add_parser("worker", help="run a stream worker (Faust); N workers share partitions")
    _flag(worker, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)
    _flag(worker, "--worker-metrics-port", "WORKER_METRICS_PORT", settings.worker_metrics_port, type=int)

    commands.add_parser("topics", help="create the project's topics (idempotent) and exit")

    sink = commands.add_parser("sink", help="run a dataset sink: topics -> Delta tables, exactly once")
    _flag(sink, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)
    _flag(sink, "--dataset-uri", "DATASET_URI", settings.dataset_uri)
    _flag(sink, "--sink-metrics-port", "SINK_METRICS_PORT", settings.sink_metrics_port, type=int)

    _dataset_commands(
        commands.add_parser("dataset", help="inspect, export and compact the Delta tables"), settings
    )

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
    simulate.add_argument("--token", help="sent as 'Authorization: Token TOKEN'")
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
    _flag(
        simulate,
        "--time-scale",
        "SIMULATE_TIME_SCALE",
        settings.simulate_time_scale,
        type=float,
        dest="simulate_time_scale",
    )
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

    train = commands.add_parser("train", help="train and evaluate a baseline model on a dataset version")
    train.add_argument("--task", choices=["dropoff", "escalation"], required=True)
    train.add_argument("--version", type=int, default=None, help="table version (default: latest)")
    train.add_argument("--out", type=Path, default=None, help="save model.joblib + metadata.json here")
    train.add_argument("--folds", type=int, default=5, help="grouped-by-chat folds (default: %(default)s)")
    train.add_argument(
        "--first-turns", type=int, default=2, help="escalation: turns seen (default: %(default)s)"
    )
    train.add_argument(
        "--include-open",
        action="store_true",
        help="also learn from rows whose label is not final yet (conversations still open): biased",
    )
    _flag(train, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)
    _flag(train, "--dataset-uri", "DATASET_URI", settings.dataset_uri)

    backfill = commands.add_parser("backfill", help="rebuild the dataset tables in batch, as a new version")
    source = backfill.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--from-topic", help="a topic of recorded deliveries (landbot.raw) or landbot.messages"
    )
    source.add_argument(
        "--from-file", type=Path, help="JSONL of bodies or {body, headers, hook} (replay format)"
    )
    _flag(backfill, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)
    _flag(backfill, "--dataset-uri", "DATASET_URI", settings.dataset_uri)

    up = commands.add_parser("up", help="run broker (unless KAFKA_BOOTSTRAP is set) + ingest + worker + sink")
    _server_flags(up, settings)
    _flag(up, "--broker-port", "BROKER_PORT", settings.broker_port, type=int)
    _flag(up, "--worker-metrics-port", "WORKER_METRICS_PORT", settings.worker_metrics_port, type=int)
    _flag(up, "--sink-metrics-port", "SINK_METRICS_PORT", settings.sink_metrics_port, type=int)
    _engine_flag(up, settings)
    _flag(up, "--simulate-rate", "SIMULATE_RATE", settings.simulate_rate, type=float)
    up.add_argument("--no-simulate", action="store_true", help="no simulated traffic: real traffic only")

    tail = commands.add_parser("tail", help="pretty-print the records of a topic")
    tail.add_argument("topic", help="full name (landbot.messages) or short name (messages)")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--chat", help="only records keyed by this chat id")
    tail.add_argument("--max", type=int, default=None, help="stop after this many records (default: never)")
    tail.add_argument(
        "--timeout", type=float, default=None, help="stop after this many seconds in all (default: never)"
    )

    _replay_flags(commands.add_parser("replay", help="POST recorded MessageHook deliveries (JSONL) again"))
    _note_per_run_flags(parser)
    return parser


PER_RUN_FLAGS = "Flags without [env: …] are per run: no environment variable sets them."


def _note_per_run_flags(parser: argparse.ArgumentParser) -> None:
    """Say, under each command's --help, that its flags without an env var have none."""
    for _, command in walk(parser):
        if any("[env: " not in (flag.help or "") for flag in flags(command)):
            command.epilog = PER_RUN_FLAGS


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the command tree with its command path, e.g. ``("dataset", "stats")``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                yield from walk(command, (*path, name))


def flags(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of one parser, --help left out."""
    return [a for a in parser._actions if a.option_strings and not isinstance(a, argparse._HelpAction)]


def _dataset_commands(dataset: argparse.ArgumentParser, settings: Settings) -> None:
    _dataset_location(dataset, settings)
    actions = dataset.add_subparsers(dest="action", required=True, metavar="ACTION")
    versions = actions.add_parser("versions", help="list the versions (commits) of a table")
    versions.add_argument("table", nargs="?", default="turn_pairs", help="table (default: %(default)s)")
    versions.add_argument(
        "--limit", type=int, default=20, help="list the newest N versions; 0 = all (default: %(default)s)"
    )
    stats = actions.add_parser(
        "stats", help="rows per table, pairs by role, answered rate, dead letters by reason"
    )
    export = actions.add_parser("export", help="write a table (at a version) to parquet, jsonl or csv")
    export.add_argument("table", help="messages, turn_pairs, conversations or dead_letters")
    export.add_argument("out", type=Path, help="output file")
    export.add_argument("--version", type=int, default=None, help="table version (default: latest)")
    export.add_argument("--format", choices=["parquet", "jsonl", "csv"], default="parquet", dest="fmt")
    compact = actions.add_parser("compact", help="merge small files, vacuum files older than the retention")
    _flag(compact, "--retention-hours", "RETENTION_HOURS", settings.retention_hours, type=float)
    for action in (versions, stats, export, compact):
        _dataset_location(action, settings, inherited=True)


def _dataset_location(
    parser: argparse.ArgumentParser, settings: Settings, *, inherited: bool = False
) -> None:
    _flag(parser, "--data-dir", "DATA_DIR", settings.data_dir, type=Path, inherited=inherited)
    _flag(parser, "--dataset-uri", "DATASET_URI", settings.dataset_uri, inherited=inherited)


def _engine_flag(parser: argparse.ArgumentParser, settings: Settings) -> None:
    from messagehooks.engines import ENGINES

    _flag(parser, "--engine", "BROKER_ENGINE", settings.broker_engine, choices=ENGINES, dest="broker_engine")


def _server_flags(parser: argparse.ArgumentParser, settings: Settings) -> None:
    _flag(parser, "--host", "HOST", settings.host)
    _flag(parser, "--port", "PORT", settings.port, type=int)
    _flag(parser, "--data-dir", "DATA_DIR", settings.data_dir, type=Path)


def _apply(settings: Settings, args: argparse.Namespace) -> Settings:
    fields = {f.name for f in dataclasses.fields(Settings)}
    changes = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    # Relative paths are relative to the working directory, as in the variables (docs/CONFIG.md).
    if "data_dir" in changes:
        changes["data_dir"] = absolute_path(changes["data_dir"])
    if "dataset_uri" in changes:
        changes["dataset_uri"] = absolute_uri(changes["dataset_uri"])
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
    from devtools.brokers import own_broker
    from messagehooks.engines import resolve
    from messagehooks.kafka import ensure_project_topics
    from messagehooks.ports import broker_listener, ensure_free

    if not settings.embedded:
        raise MessageHooksError(
            f"{ENV_PREFIX}KAFKA_BOOTSTRAP is set ({settings.kafka_bootstrap}): "
            "that cluster is the broker; unset it to run the project's own"
        )
    ensure_free([broker_listener(settings, flag="--port")])
    engine = resolve(settings)
    logger.info("broker engine: %s (%s)", engine.name, engine.reason)
    with own_broker(settings) as broker:
        asyncio.run(ensure_project_topics(settings))
        sys.stderr.write(f"{engine.name} broker on {broker.bootstrap}; Ctrl-C stops it\n")
        _wait_for_signal()
    return 0


def _run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from messagehooks.ports import bind, ingest_listener

    require_hooks(settings)
    # The port first: a taken one is a one-line error before the app connects to anything.
    sock = bind(ingest_listener(settings))
    import uvicorn

    from ingest.app import create_app
    from ingest.connection_guard import ConnectionLimits, guarded_protocol
    from messagehooks.logging import logging_config

    app = create_app(settings)
    limits = ConnectionLimits(settings.max_header_bytes, settings.header_timeout, settings.request_deadline)
    cut = app.state.ingest.metrics.connections_cut
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Set explicitly: the asyncio/h11 fallback serves 3x fewer requests (measured on 2 cores).
        loop="uvloop",
        # httptools, with the header size and time limits it lacks (ingest/connection_guard.py).
        http=guarded_protocol(limits, lambda reason: cut.labels(reason).inc()),
        ws="none",  # no WebSocket route: an Upgrade request is served as plain HTTP
        log_config=logging_config(settings.log_level),
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _run_worker(settings: Settings, args: argparse.Namespace) -> int:
    import pandas as pd

    from dataset import store
    from streams.app import run_worker  # faust is slow to import: only here

    def read_table(table: str, columns: list[str]) -> pd.DataFrame | None:
        """The dataset table's `columns`, for the worker's resume (streams do not import dataset)."""
        root = settings.dataset_root
        if not store.exists(root, table):
            return None
        frame: pd.DataFrame = store.read(store.open_table(root, table), columns).to_pandas()
        return frame

    return run_worker(settings, read_table)


def _run_topics(settings: Settings, args: argparse.Namespace) -> int:
    from messagehooks.kafka import broker_reached, ensure_project_topics

    with broker_reached(settings.bootstrap):
        created = asyncio.run(ensure_project_topics(settings))
    names = ", ".join(settings.topics.all())
    sys.stderr.write(f"topics on {settings.bootstrap}: {names} ({len(created)} created now)\n")
    return 0


def _run_sink(settings: Settings, args: argparse.Namespace) -> int:
    from dataset.sink import run_sink
    from dataset.store import check_tables
    from messagehooks.ports import ensure_free, sink_metrics_listener

    check_tables(settings.dataset_root)  # a corrupt table: one line and exit 2, not a DeltaError
    if settings.sink_metrics_port:  # a taken port stops the sink before it writes anything
        ensure_free([sink_metrics_listener(settings)])
    _create_local_root(settings.dataset_root)
    return run_sink(settings)


def _run_dataset(settings: Settings, args: argparse.Namespace) -> int:
    from dataset import maintenance, store

    root = settings.dataset_root
    if args.action in ("stats", "compact"):
        _require_local_root(root)  # the others already say that the table they read is missing
    if args.action == "versions":
        store.spec(args.table)
        entries = store.versions(root, args.table, limit=args.limit if args.limit > 0 else None)
        for entry in entries:
            version, when, operation, rows = (entry[k] for k in ("version", "timestamp", "operation", "rows"))
            sys.stdout.write(f"{version:>6}  {when}  {operation:<10} {rows:>8} rows\n")
        if args.limit > 0 and entries and entries[0]["version"] > 0:
            first, last = entries[0]["version"], entries[-1]["version"]
            sys.stderr.write(
                f"(the newest {len(entries)}: versions {first} to {last}; --limit 0 lists all)\n"
            )
    elif args.action == "stats":
        sys.stdout.write(json.dumps(maintenance.stats(root), indent=2) + "\n")
    elif args.action == "export":
        rows = maintenance.export(root, args.table, args.out, version=args.version, fmt=args.fmt)
        sys.stderr.write(f"exported {rows} rows of {args.table} to {args.out}\n")
    else:
        report = maintenance.compact(root, retention_hours=settings.retention_hours)
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


def _require_local_root(root: str) -> None:
    """A dataset directory that does not exist is a wrong --data-dir, not an empty dataset.

    `up` and `sink` create it when they start (`_create_local_root`), so it exists from the first
    second of a pipeline, before any commit. Object-store URLs are not checked.
    """
    if "://" not in root and not Path(root).is_dir():
        raise ConfigError(
            f"no dataset at {Path(root).resolve()}: the directory does not exist; give the --data-dir "
            f"(or {ENV_PREFIX}DATA_DIR) of a `messagehooks up` (it creates the directory), or --dataset-uri"
        )


def _create_local_root(root: str) -> None:
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)


def _run_simulate(settings: Settings, args: argparse.Namespace) -> int:
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
        simulate(options, args.url, token=args.token, out=sys.stderr, stop=stop, stopped_wait=CUT_SHORT_WAIT)
    )
    return 0 if summary.delivered_all else 1


def _run_train(settings: Settings, args: argparse.Namespace) -> int:
    from features.training import NotEnoughData, save, train_from_store

    if args.folds < 2 or args.first_turns < 1:
        raise MessageHooksError(
            f"need --folds 2 or more and --first-turns 1 or more, got {args.folds}, {args.first_turns}"
        )
    try:
        result = train_from_store(
            args.task,
            version=args.version,
            root=settings.dataset_root,
            folds=args.folds,
            first_turns=args.first_turns,
            include_open=args.include_open,
        )
    except NotEnoughData as exc:
        raise MessageHooksError(f"not enough data to train: {exc}") from exc
    versions = ", ".join(f"{table} version {v}" for table, v in result.labels["versions"].items())
    sys.stdout.write(
        f"task {args.task}: {result.rows} rows, {result.chats} chats, "
        f"positive rate {result.positive_rate:.3f}, {result.folds} folds grouped by chat; read {versions}\n"
        f"{result.labels['summary']}\n\n"
    )
    sys.stdout.write(result.metrics.round(4).to_string() + "\n")
    sys.stdout.write(f"calibration error (out of fold): {result.calibration_error:.4f}\n")
    if args.out is not None:
        sys.stdout.write(f"\nsaved to {save(result, args.out)}\n")
    return 0


def _run_backfill(settings: Settings, args: argparse.Namespace) -> int:
    from dataset.backfill import backfill

    backfill(settings, from_topic=args.from_topic, from_file=args.from_file, out=sys.stderr)
    return 0


def _run_up(settings: Settings, args: argparse.Namespace) -> int:
    from cli.supervisor import run_stack
    from dataset.store import check_tables
    from messagehooks.ports import ensure_free, stack_listeners

    check_tables(settings.dataset_root)  # before any child starts: the sink would stop on it
    ensure_free(stack_listeners(settings))  # a taken port stops `up` before it writes anything
    _create_local_root(settings.dataset_root)  # `dataset stats` shows an empty dataset, not an error
    return run_stack(settings, simulate_rate=0.0 if args.no_simulate else settings.simulate_rate)


def _run_tail(settings: Settings, args: argparse.Namespace) -> int:
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


def _replay_flags(replay: argparse.ArgumentParser) -> None:
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


def _run_replay(settings: Settings, args: argparse.Namespace) -> int:
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
    "sink": _run_sink,
    "topics": _run_topics,
    "dataset": _run_dataset,
    "backfill": _run_backfill,
    "tail": _run_tail,
    "replay": _run_replay,
    "train": _run_train,
    "simulate": _run_simulate,
}
