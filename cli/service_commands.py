"""The pipeline's processes: ``broker``, ``ingest``, ``worker``, ``topics``, ``sink`` and ``up``.

Each runner imports its runtime (uvicorn, faust, deltalake) when it runs, not before: ``--help``
and the other commands stay fast.
"""

import argparse
import asyncio
import logging
import signal
import sys
import threading
from pathlib import Path

from cli.dataset_commands import create_local_root
from cli.flags import Commands, engine_flag, server_flags, setting_flag
from messagehooks.errors import MessageHooksError
from messagehooks.settings import ENV_PREFIX, Settings, require_hooks

logger = logging.getLogger("messagehooks")


def add_broker(commands: Commands, settings: Settings) -> None:
    """``messagehooks broker``."""
    broker = commands.add_parser("broker", help="run the project's own broker (Apache Kafka or Tansu)")
    setting_flag(broker, "--port", "broker_port", settings)
    engine_flag(broker, settings)
    setting_flag(broker, "--data-dir", "data_dir", settings, type=Path)


def add_ingest(commands: Commands, settings: Settings) -> None:
    """``messagehooks ingest``."""
    server_flags(commands.add_parser("ingest", help="run the HTTP ingest server (uvicorn)"), settings)


def add_worker(commands: Commands, settings: Settings) -> None:
    """``messagehooks worker``."""
    worker = commands.add_parser("worker", help="run a stream worker (Faust); N workers share partitions")
    setting_flag(worker, "--data-dir", "data_dir", settings, type=Path)
    setting_flag(worker, "--worker-metrics-port", "worker_metrics_port", settings)


def add_topics(commands: Commands, settings: Settings) -> None:
    """``messagehooks topics``."""
    commands.add_parser("topics", help="create the project's topics (idempotent) and exit")


def add_sink(commands: Commands, settings: Settings) -> None:
    """``messagehooks sink``."""
    sink = commands.add_parser("sink", help="run a dataset sink: topics -> Delta tables, exactly once")
    setting_flag(sink, "--data-dir", "data_dir", settings, type=Path)
    setting_flag(sink, "--dataset-uri", "dataset_uri", settings)
    setting_flag(sink, "--sink-metrics-port", "sink_metrics_port", settings)


def add_up(commands: Commands, settings: Settings) -> None:
    """``messagehooks up``."""
    up = commands.add_parser("up", help="run broker (unless KAFKA_BOOTSTRAP is set) + ingest + worker + sink")
    server_flags(up, settings)
    setting_flag(up, "--broker-port", "broker_port", settings)
    setting_flag(up, "--worker-metrics-port", "worker_metrics_port", settings)
    setting_flag(up, "--sink-metrics-port", "sink_metrics_port", settings)
    engine_flag(up, settings)
    setting_flag(up, "--simulate-rate", "simulate_rate", settings)
    up.add_argument("--no-simulate", action="store_true", help="no simulated traffic: real traffic only")


def run_broker(settings: Settings, args: argparse.Namespace) -> int:
    """Run the project's own broker until a signal."""
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


def run_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Serve the ingest with uvicorn on the configured port."""
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


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Run a stream worker, handing it a reader of the dataset for its resume."""
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


def run_topics(settings: Settings, args: argparse.Namespace) -> int:
    """Create the project's topics and say which."""
    from messagehooks.kafka import broker_reached, ensure_project_topics

    with broker_reached(settings.bootstrap):
        created = asyncio.run(ensure_project_topics(settings))
    names = ", ".join(settings.topics.all())
    sys.stderr.write(f"topics on {settings.bootstrap}: {names} ({len(created)} created now)\n")
    return 0


def run_sink(settings: Settings, args: argparse.Namespace) -> int:
    """Run a dataset sink, after checking its tables and its metrics port."""
    from dataset.sink import run_sink
    from dataset.store import check_tables
    from messagehooks.ports import ensure_free, sink_metrics_listener

    check_tables(settings.dataset_root)  # a corrupt table: one line and exit 2, not a DeltaError
    if settings.sink_metrics_port:  # a taken port stops the sink before it writes anything
        ensure_free([sink_metrics_listener(settings)])
    create_local_root(settings.dataset_root)
    return run_sink(settings)


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    """Run the whole pipeline (cli/supervisor.py), after checking its tables and ports."""
    from cli.supervisor import run_stack
    from dataset.store import check_tables
    from messagehooks.ports import ensure_free, stack_listeners

    check_tables(settings.dataset_root)  # before any child starts: the sink would stop on it
    ensure_free(stack_listeners(settings))  # a taken port stops `up` before it writes anything
    create_local_root(settings.dataset_root)  # `dataset stats` shows an empty dataset, not an error
    return run_stack(settings, simulate_rate=0.0 if args.no_simulate else settings.simulate_rate)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
