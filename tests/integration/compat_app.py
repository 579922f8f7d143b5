"""A minimal Faust worker for tests/integration/test_kafka_compat.py, run as a child process.

``python -m tests.integration.compat_app BOOTSTRAP APP_ID SOURCE SINK PARTITIONS``

One agent reads JSON events ``{"id": n}`` from SOURCE, counts them per key in a changelogged
table and writes ``{"id", "count", "fetch_max_wait_ms"}`` to SINK (key = the event's key).
Every fix of messagehooks.kafka_compat is applied (the broker is the embedded Tansu), except
the ones named in ``COMPAT_SKIP_FIXES`` (comma-separated ``patch_*`` names): that switch exists
only to check by hand that each test fails without its fix.
"""

import os
import sys
from typing import Any

import faust

from messagehooks import kafka_compat
from messagehooks.faust_settings import faust_app_settings, quiet_faust_loggers
from messagehooks.settings import Settings

PATCHES = (
    "patch_recovery_seek_before_resume",
    "patch_flow_control_resume",
    "patch_fetch_only_active_partitions",
    "patch_leave_group_generation_zero",
    "patch_changelog_highwaters",
    "patch_fetch_max_wait",
)


def apply_fixes() -> None:
    skipped = {name for name in os.environ.get("COMPAT_SKIP_FIXES", "").split(",") if name}
    if not skipped:
        kafka_compat.apply_faust_fixes(embedded=True)
        return
    for name in PATCHES:
        if name not in skipped:
            getattr(kafka_compat, name)()


def fetch_max_wait_ms(app: faust.App) -> int | None:
    """The value the running aiokafka consumer's fetcher really uses."""
    thread = getattr(app.consumer, "_thread", None)  # faust's aiokafka consumer thread
    consumer = getattr(thread, "_consumer", None)
    fetcher = getattr(consumer, "_fetcher", None)
    return getattr(fetcher, "_fetch_max_wait_ms", None)


def build_app(bootstrap: str, app_id: str, source: str, sink: str, partitions: int) -> faust.App:
    settings = Settings(kafka_bootstrap=bootstrap, worker_id=app_id, partitions=partitions)
    app = faust.App(app_id, **faust_app_settings(settings))
    source_topic = app.topic(source, key_type=str, value_serializer="json")
    sink_topic = app.topic(sink, key_type=str, value_serializer="json")
    counts = app.Table("counts", default=int, partitions=partitions)

    @app.agent(source_topic)
    async def count_events(stream: Any) -> None:
        if "COMPAT_LOGLEVEL" not in os.environ:
            quiet_faust_loggers()
        async for key, event in stream.items():
            counts[key] += 1
            value = {"id": event["id"], "count": counts[key], "fetch_max_wait_ms": fetch_max_wait_ms(app)}
            await sink_topic.send(key=key, value=value)

    return app


def main(argv: list[str]) -> None:
    bootstrap, app_id, source, sink, partitions = argv
    apply_fixes()
    app = build_app(bootstrap, app_id, source, sink, int(partitions))
    loglevel = os.environ.get("COMPAT_LOGLEVEL", "WARNING")  # INFO/DEBUG to debug a failure
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1:])
