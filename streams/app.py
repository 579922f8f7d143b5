"""The Faust application of the stream workers, built from `Settings` (no env read at import)."""

import logging

import faust

from messagehooks.engines import tansu_fixes
from messagehooks.metrics import serve, worker_registry
from messagehooks.ports import ensure_free, worker_metrics_listener
from messagehooks.settings import Settings
from streams.agents import register_agents
from streams.faust_settings import faust_app_settings, quiet_faust_loggers
from streams.patches import apply_faust_fixes
from streams.resume import TableReader
from streams.sessionizer import StreamStats


def build_app(settings: Settings, read_table: TableReader) -> tuple[faust.App, StreamStats]:
    """A Faust app with the sessionizing agent; the Tansu fixes apply on the embedded broker.

    `read_table` reads the dataset's tables, to resume open conversations (streams/resume.py).
    """
    app_settings = faust_app_settings(settings)
    apply_faust_fixes(
        embedded=tansu_fixes(settings), transactions=app_settings["processing_guarantee"] == "exactly_once"
    )
    app = faust.App(settings.worker_id, **app_settings)
    stats = register_agents(app, settings, read_table)

    @app.task
    async def quiet_loggers() -> None:
        # faust.Worker leaves its loggers at DEBUG when it starts (-17 % throughput).
        quiet_faust_loggers(max(logging.WARNING, logging.getLevelName(settings.log_level)))

    return app, stats


def run_worker(settings: Settings, read_table: TableReader) -> int:
    """Run one stream worker until SIGINT/SIGTERM (several workers share the partitions).

    `read_table` reads the dataset's tables (the caller's: streams do not import `dataset`).

    Raises:
        PortUnavailable: the metrics port is taken (checked before the worker joins its group).
    """
    metrics = worker_metrics_listener(settings)
    ensure_free([metrics] if metrics.port else [])  # before the app creates its data dir
    app, stats = build_app(settings, read_table)
    serve(worker_registry(stats, stats.gauges), metrics)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
