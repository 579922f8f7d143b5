"""How long a fresh consumer group waits for its first record, per client settings and engine.

A subscriber's first `poll` after `subscribe` waits for the group join (and the first fetch);
docs/topics.md quotes these figures and the settings that shorten them. Each run uses a new
group on a topic that already holds records, so the time is join + first fetch. Every wait is
bounded (`--timeout`). Run: .venv/bin/python -m benchmarks.bench_join [--engine kafka] [--runs 3]
"""

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, libversion

from benchmarks.engine import add_engine_option, started_broker
from messagehooks.kafka import ensure_topics, make_producer

PARTITIONS = 6

JoinClient = Callable[[str, str, float], float]
"""(bootstrap, topic, timeout) -> seconds from subscribing to the first record."""


def librdkafka(**extra: Any) -> JoinClient:
    """A confluent-kafka consumer with librdkafka's defaults plus `extra`."""

    def first_record(bootstrap: str, topic: str, timeout: float) -> float:
        config = {
            "bootstrap.servers": bootstrap,
            "group.id": f"join-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **extra,
        }
        consumer = Consumer(config)
        began = time.perf_counter()
        try:
            consumer.subscribe([topic])
            while time.perf_counter() - began < timeout:
                record = consumer.poll(0.1)
                if record is not None and not record.error():
                    return time.perf_counter() - began
        finally:
            consumer.close()
        raise TimeoutError(f"no record within {timeout:g} s")

    return first_record


def aiokafka(**extra: Any) -> JoinClient:
    """An aiokafka consumer with aiokafka's defaults plus `extra`."""

    async def first_record_async(bootstrap: str, topic: str, timeout: float) -> float:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"join-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            **extra,
        )
        began = time.perf_counter()
        await consumer.start()
        try:
            async with asyncio.timeout(timeout):
                await consumer.getone()
            return time.perf_counter() - began
        finally:
            await consumer.stop()

    def first_record(bootstrap: str, topic: str, timeout: float) -> float:
        return asyncio.run(first_record_async(bootstrap, topic, timeout))

    return first_record


CLIENTS: dict[str, JoinClient] = {
    "librdkafka defaults": librdkafka(),
    "librdkafka session.timeout.ms=6000": librdkafka(**{"session.timeout.ms": 6000}),
    # The project's brokers allow 1 s (group.min.session.timeout.ms); stock Apache Kafka 6 s.
    "librdkafka session.timeout.ms=2000": librdkafka(
        **{"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}
    ),
    "aiokafka defaults": aiokafka(),
    "aiokafka session_timeout_ms=6000": aiokafka(session_timeout_ms=6000, heartbeat_interval_ms=2000),
}


async def _fill(bootstrap: str, topic: str) -> None:
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            await producer.send_and_wait(topic, b'{"n": 1}', key=b"k", partition=partition)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_engine_option(parser)
    parser.add_argument("--runs", type=int, default=3, help="fresh groups per client (median reported)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds one join may take at most")
    args = parser.parse_args()
    results: dict[str, Any] = {"engine": args.engine, "librdkafka": libversion()[0], "clients": {}}
    with started_broker(args.engine) as broker:
        topic = f"join-{uuid.uuid4().hex[:8]}"
        asyncio.run(_fill(broker.bootstrap, topic))
        for name, client in CLIENTS.items():
            seconds = [round(client(broker.bootstrap, topic, args.timeout), 2) for _ in range(args.runs)]
            results["clients"][name] = {"median_s": statistics.median(seconds), "runs_s": seconds}
            print(f"{args.engine}: {name}: {seconds}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
