"""Client-side fixes for the embedded Tansu broker (applied only when it is the engine).

Each replaces or wraps one private function of the pinned releases (`streams.patches.pins`);
which one is needed on which engine is shown by tests/integration/test_kafka_compat.py (table
in docs/engines.md).
"""

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.patches.pins import install, is_patched

logger = logging.getLogger(__name__)

EMBEDDED_FETCH_MAX_WAIT_MS = 100
"""Faust hard-codes 1500 ms; Tansu re-checks a waiting Fetch only at half of it."""


def patch_leave_group_generation_zero() -> None:
    """Send LeaveGroup on a graceful stop in generation 0 too (embedded broker only).

    aiokafka 0.14.0 ``GroupCoordinator._maybe_leave_group`` (group_coordinator.py) leaves only
    when ``generation > 0``; Tansu numbers a group's first generation 0, so the first member of
    every group never leaves and the next member waits behind the ghost (111 s with defaults).
    """
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.group import LeaveGroupRequest

    if is_patched(GroupCoordinator, "_maybe_leave_group"):
        return

    async def _maybe_leave_group(self: Any) -> None:
        if self.generation >= 0 and self._group_instance_id is None:
            request = LeaveGroupRequest(self.group_id, self.member_id)
            try:
                await self._send_req(request)
            except KafkaError as err:
                logger.error("LeaveGroup request failed: %s", err)
            else:
                logger.info("LeaveGroup request succeeded")
        self.reset_generation()

    install(GroupCoordinator, "_maybe_leave_group", _maybe_leave_group)


def patch_changelog_highwaters() -> None:
    """Take Faust's changelog high-water marks from a Fetch response (embedded broker only).

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._highwaters`` returns aiokafka's
    ``end_offsets()`` (ListOffsets LATEST), which Tansu 0.6 answers with the base offset of the
    last batch + 1. Table recovery stops at that mark, so table values go backwards after a
    restart. The patched method corrects each non-empty partition with `fetch_highwaters`.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if is_patched(AIOKafkaConsumerThread, "_highwaters"):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self: Any, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        reported: dict[TopicPartition, int] = dict(await original(self, partitions))
        if self.consumer.in_transaction:
            return reported  # last stable offsets, not from ListOffsets
        return await fetch_highwaters(self._ensure_consumer(), reported)

    install(AIOKafkaConsumerThread, "_highwaters", _highwaters)


async def fetch_highwaters(
    consumer: AIOKafkaConsumer, reported: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Correct ListOffsets(LATEST) answers with the high watermark of a one-off Fetch.

    Unlike `end_offsets`, this leaves the consumer's positions and fetcher alone: it sends its
    own Fetch request, starting inside the last batch (``reported - 1``), to each leader.
    A partition whose leader is unknown or whose fetch fails keeps its reported offset.

    Args:
        consumer: a started consumer (its client and metadata are used).
        reported: end offsets as answered by ListOffsets(LATEST).

    Returns:
        The end offset (last offset + 1) of every partition in `reported`.
    """
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.fetch import FetchRequest

    client = consumer._client
    by_leader: dict[int, dict[str, list[tuple[int, int, int]]]] = {}
    for tp, offset in reported.items():
        leader = client.cluster.leader_for_partition(tp)
        if offset > 0 and leader is not None and leader >= 0:
            by_leader.setdefault(leader, {}).setdefault(tp.topic, []).append((tp.partition, offset - 1, 1))
    corrected = dict(reported)
    unanswered = {tp for tp, offset in reported.items() if offset > 0}
    for leader, topics in by_leader.items():
        # Tansu answers a Fetch with max_wait 0 with no partitions at all; the records exist (the
        # fetch starts inside the last batch), so a short max_wait returns at once.
        request = FetchRequest(100, 1, 1, 0, list(topics.items()))
        try:
            response = await client.send(leader, request)
        except KafkaError as exc:
            logger.warning("high-watermark fetch from node %s failed: %s", leader, exc)
            continue
        for topic, partitions in response.topics:
            for partition, error_code, highwater, *_ in partitions:
                tp = TopicPartition(topic, partition)
                unanswered.discard(tp)
                if error_code == 0 and highwater >= corrected[tp]:
                    corrected[tp] = highwater
                elif error_code != 0:
                    logger.warning("high-watermark fetch of %s: error code %s", tp, error_code)
    if unanswered:
        logger.warning("no high watermark for %s; kept ListOffsets' answer", sorted(unanswered))
    return corrected


def patch_fetch_max_wait() -> None:
    """Use `EMBEDDED_FETCH_MAX_WAIT_MS` for Faust's consumer (embedded broker only).

    faust-streaming 0.15.3 ``AIOKafkaConsumerThread._create_worker_consumer`` hard-codes
    ``fetch_max_wait_ms=1500``; Tansu re-checks a waiting Fetch at half of it, so an idle stream
    saw a new record ~330 ms late at p50 (18 ms at 100 ms). aiokafka hands the value to its
    fetcher at ``start()``, so setting it on the fresh consumer is enough.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if is_patched(AIOKafkaConsumerThread, "_create_worker_consumer"):
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> AIOKafkaConsumer:
        consumer: AIOKafkaConsumer = original(self, transport)
        consumer._fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS
        return consumer

    install(AIOKafkaConsumerThread, "_create_worker_consumer", _create_worker_consumer)
