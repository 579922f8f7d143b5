"""A minimal Faust worker for tests/integration/test_kafka_compat.py, run as a child process.

``python -m tests.integration.compat_app APP_ID SOURCE SINK PARTITIONS``

The broker and its engine come from the ``MESSAGEHOOKS_*`` variables, as for the stream worker
(``tests.conftest.broker_env``). One agent reads JSON events ``{"id": n}`` from SOURCE, counts
them per key in a changelogged table and writes ``{"id", "count", "fetch_max_wait_ms", "fixes"}``
to SINK (key = the event's key). The fixes of streams.patches are the ones the stream
worker applies on that engine (``fixes`` names them), except the ones named in
``COMPAT_SKIP_FIXES`` (comma-separated ``patch_*`` names): that switch exists only to check by
hand that a test fails without its fix.
"""

import os
import sys
from dataclasses import replace
from typing import Any

import faust

from messagehooks.engines import tansu_fixes
from messagehooks.settings import Settings, load_settings
from streams.faust_settings import faust_app_settings, quiet_faust_loggers
from streams.patches import faust_fixes


def apply_fixes(settings: Settings) -> list[str]:
    """The stream worker's fixes for this engine but the skipped ones; returns their names."""
    skipped = set(os.environ.get("COMPAT_SKIP_FIXES", "").split(","))
    applied = [fix for fix in faust_fixes(embedded=tansu_fixes(settings)) if fix.__name__ not in skipped]
    for fix in applied:
        fix()
    return [fix.__name__ for fix in applied]


def fetch_max_wait_ms(app: faust.App) -> int | None:
    """The value the running aiokafka consumer's fetcher really uses."""
    thread = getattr(app.consumer, "_thread", None)  # faust's aiokafka consumer thread
    consumer = getattr(thread, "_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    return getattr(fetcher, "_fetch_max_wait_ms", None)


def build_app(settings: Settings, source: str, sink: str, fixes: list[str]) -> faust.App:
    app = faust.App(settings.worker_id, **faust_app_settings(settings))
    source_topic = app.topic(source, key_type=str, value_serializer="json")
    sink_topic = app.topic(sink, key_type=str, value_serializer="json")
    counts = app.Table("counts", default=int, partitions=settings.partitions)

    @app.agent(source_topic)
    async def count_events(stream: Any) -> None:
        if "COMPAT_LOGLEVEL" not in os.environ:
            quiet_faust_loggers()
        async for key, event in stream.items():
            counts[key] += 1
            value = {
                "id": event["id"],
                "count": counts[key],
                "fetch_max_wait_ms": fetch_max_wait_ms(app),
                "fixes": fixes,
            }
            await sink_topic.send(key=key, value=value)

    return app


def main(argv: list[str]) -> None:
    app_id, source, sink, partitions = argv
    settings = replace(load_settings(), worker_id=app_id, partitions=int(partitions))
    fixes = apply_fixes(settings)
    app = build_app(settings, source, sink, fixes)
    loglevel = os.environ.get("COMPAT_LOGLEVEL", "WARNING")  # INFO/DEBUG to debug a failure
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
