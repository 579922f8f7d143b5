"""Thin Faust agents: each hands its events or its tick to the `Sessionizer` (one call each).

The rules they drive are pure and tested without a broker: `streams.sessions.step` (one chat's
state machine), `streams.idle` (which chats are idle and which partitions caught up) and
`streams.resume` (rebuilding open conversations); streams/sessionizer.py does the I/O around
them (outputs before state, docs/streams.md).
"""

from typing import Any

import faust

from messagehooks.settings import Settings
from streams.codec import register_codecs
from streams.idle import check_interval
from streams.resume import TableReader
from streams.sessionizer import Sessionizer, StreamStats

BATCH_MAX = 500
"""Events processed per batch: one round trip of output acks per batch, not per event."""
BATCH_WITHIN = 0.05
"""Seconds a batch waits to fill before it is processed (adds at most this to the delay)."""


def register_agents(app: faust.App, settings: Settings, read_table: TableReader) -> StreamStats:
    """Declare topics, the chats table, the sessionizing agent and the timers on `app`.

    Args:
        app: The Faust app.
        settings: The worker's settings.
        read_table: Reads the dataset's tables, to resume open conversations (streams/resume.py).
    """
    register_codecs()
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    messages = app.topic(settings.topics.messages, partitions=settings.partitions, **raw)
    worker = Sessionizer(app, settings, read_table)

    @app.agent(messages, name="sessionize-messages")
    async def sessionize_messages(stream: faust.StreamT[bytes]) -> None:
        # StreamT in faust 0.15.3 does not declare take_events (Stream implements it).
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN):  # type: ignore[attr-defined]
            await worker.process_batch(batch)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode types receivers as taking *args
    async def track_assignment(_app: Any, assigned: Any, **_: Any) -> None:
        await worker.assigned(assigned)

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # mode types receivers as taking *args
    async def resume_open_chats(_app: Any, **_: Any) -> None:
        await worker.resume()

    @app.timer(interval=check_interval(settings.conversation_gap))
    async def close_idle_chats() -> None:
        await worker.close_idle()

    @app.timer(interval=30.0)
    async def log_stats() -> None:
        worker.log_stats()

    @app.timer(interval=5.0)
    async def refresh_gauges() -> None:
        worker.refresh_gauges()

    return worker.stats
