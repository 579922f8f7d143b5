"""Fixes of Faust, mode and aiokafka start-up races, needed on any broker.

Each replaces or wraps one private function of the pinned releases (`streams.patches.pins`)
and names the upstream behaviour it works around; tests/integration/test_kafka_compat.py
shows each one failing without it.
"""

import asyncio
from collections.abc import Awaitable, Callable, Container
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.patches.pins import install, is_patched


def patch_recovery_seek_before_resume() -> None:
    """Seek stream partitions to their committed offsets *before* resuming them.

    faust-streaming 0.15.3 ``Recovery.on_recovery_completed`` and ``Recovery._resume_streams``
    resume the stream partitions, then await ``consumer.perform_seek()``. After a table recovery
    the fetcher is already running, so during that await it fetches stream records from the old
    position and hands them to the agents (marking them read); the seek then rewinds, and those
    records are dropped by the queue clear (see `patch_flow_control_resume`) or delivered twice,
    which corrupts the ack bookkeeping. These copies of the 0.15.3 methods only swap the two steps.
    """
    from faust.tables.recovery import Recovery

    if is_patched(Recovery, "on_recovery_completed"):
        return

    async def on_recovery_completed(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(self.actives_for_table[table], self.standbys_for_table[table])
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                "Recovery rebalancing again app id %s param %s",
                app.consumer_generation_id,
                generation_id,
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    async def _resume_streams(self: Any, generation_id: int = 0) -> None:
        app = self.app
        consumer = app.consumer
        await app.on_rebalance_complete.send()
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again")
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
            await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
            consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
        else:
            self.log.info("Resuming streams with empty assignment")
        self.completed.set()
        app.flow_control.resume()
        consumer.resume_flow()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")

    install(Recovery, "on_recovery_completed", on_recovery_completed)
    install(Recovery, "_resume_streams", _resume_streams)


def patch_flow_control_resume() -> None:
    """Let ``FlowControlEvent.resume()`` clear the agents' queues only if flow was suspended.

    mode-streaming 0.7.1 ``FlowControlEvent.resume`` always clears every managed queue, and Faust
    0.15.3 calls it at the end of recovery although flow has been running since the changelog
    replay: events already fetched (and marked read) are thrown away. Clearing belongs to a real
    suspend/resume cycle (a rebalance), which still clears as before.
    """
    from mode.utils.queues import FlowControlEvent

    if is_patched(FlowControlEvent, "resume"):
        return

    def resume(self: Any) -> None:
        was_suspended = self._suspend.is_set()
        self._suspend.clear()
        self._resume.set()
        if was_suspended:
            self.clear()

    install(FlowControlEvent, "resume", resume)


class _NeverEmpty:
    """Membership view of Faust's live set of active partitions that is never falsy."""

    def __init__(self, partitions: Container[TopicPartition]) -> None:
        self._partitions = partitions

    def __contains__(self, tp: object) -> bool:
        return tp in self._partitions

    def __bool__(self) -> bool:
        return True


def patch_fetch_only_active_partitions() -> None:
    """Never let an in-flight fetch return records of paused partitions.

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._fetch_records`` hands its *live* set of
    active partitions to aiokafka 0.14.0 ``Fetcher.fetched_records``, which reads an empty
    set as "every partition". When recovery pauses the changelog partitions while a fetch waits,
    the set empties and the fetch returns (and moves the position past) records of the still
    paused stream partitions; Faust's ``getmany`` then drops them as inactive. A partition with
    a committed offset is rewound by the seek at the end of recovery, but one without is not:
    its records are lost. The view keeps the live membership and is never empty.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if is_patched(AIOKafkaConsumerThread, "_fetch_records"):
        return
    original: Callable[..., Awaitable[Any]] = AIOKafkaConsumerThread._fetch_records

    async def _fetch_records(
        self: Any,
        consumer: AIOKafkaConsumer,
        active_partitions: Container[TopicPartition] | None,
        timeout: float | None = None,
        max_records: int | None = None,
    ) -> Any:
        # None (a client-only app) still means every partition.
        view = None if active_partitions is None else _NeverEmpty(active_partitions)
        return await original(self, consumer, view, timeout=timeout, max_records=max_records)

    install(AIOKafkaConsumerThread, "_fetch_records", _fetch_records)


def patch_create_topic_waits_for_metadata() -> None:
    """Return from Faust's topic creation only once its producer knows the topic's partitions.

    faust-streaming 0.15.3 ``Producer.create_topic`` creates the topic, then forces one metadata
    update of aiokafka's producer; that update asks only for the topics the producer has sent to
    (all topics while there is none), and Apache Kafka's answer may not list a topic created a
    moment ago (the broker's metadata lags its controller under load). The producer then keeps
    that metadata for minutes, but a table's changelog record is partitioned at once from it
    (``key_partition``, no waiting): the worker's agent crashed at its first state write
    ("'NoneType' object is not iterable") and the worker went on running, processing nothing.
    aiokafka's ``_wait_on_metadata`` adds the topic to the producer's list and waits for it.
    """
    from faust.transport.drivers.aiokafka import Producer

    if is_patched(Producer, "create_topic"):
        return
    original: Callable[..., Awaitable[None]] = Producer.create_topic

    async def create_topic(self: Any, topic: str, *args: Any, **kwargs: Any) -> None:
        await original(self, topic, *args, **kwargs)
        if self.app.conf.topic_allow_declare:
            await self._ensure_producer().client._wait_on_metadata(topic)

    install(Producer, "create_topic", create_topic)
