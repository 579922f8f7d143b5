"""Worker restart time with the memory table store vs RocksDB (rocksdict), same changelog.

A worker processes N pre-filled messages, stops gracefully, and a new worker starts; restart
time = from the new process's start until it has processed one fresh message (group join +
table recovery + Faust's fixed 1 s start sleep). Run: .venv/bin/python -m benchmarks.bench_restart
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.bench_stream import PARTITIONS, committed_total, prefill
from benchmarks.engine import broker_env
from devtools.tansu import EmbeddedBroker
from messagehooks.kafka import ensure_topics, make_producer
from messagehooks.schema import Message, encode_message

HERE = Path(__file__).resolve().parent


async def wait_committed(bootstrap: str, topic: str, group: str, total: int, timeout: float = 300) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        deadline = time.monotonic() + timeout
        while await committed_total(consumer, partitions) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{group} did not reach {total}")
            await asyncio.sleep(0.05)
    finally:
        await consumer.stop()


async def produce_one(bootstrap: str, topic: str) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    message = Message(
        message_id=uuid.uuid4().hex,
        chat_id="restart-probe",
        hook="bench",
        type="text",
        role="customer",
        timestamp=time.time(),
        body="hi",
    )
    await producer.send_and_wait(topic, encode_message(message), key=b"restart-probe")
    await producer.stop()


def restart_seconds(store: str, messages: int) -> float:
    prefix = f"rs{uuid.uuid4().hex[:6]}."
    topic = prefix + "messages"
    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as data_dir:
        total = asyncio.run(prefill(broker.bootstrap, topic, messages))
        asyncio.run(
            ensure_topics(
                broker.bootstrap,
                [prefix + t for t in ("turn-pairs", "conversations", "dead-letter")],
                partitions=PARTITIONS,
            )
        )
        group = f"restart-{uuid.uuid4().hex[:6]}"
        env = {
            **os.environ,
            **broker_env(broker),  # with the engine: `auto` would mean Kafka where Java is
            "MESSAGEHOOKS_TOPIC_PREFIX": prefix,
            "MESSAGEHOOKS_PARTITIONS": str(PARTITIONS),
            "MESSAGEHOOKS_WORKER_ID": group,
            "MESSAGEHOOKS_TABLE_STORE": store,
            "MESSAGEHOOKS_DATA_DIR": data_dir,
            "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",  # a taken 9101 would stop the worker
        }
        env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
        command = [sys.executable, "-m", "messagehooks", "worker"]
        first = subprocess.Popen(
            command, env=env, cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        asyncio.run(wait_committed(broker.bootstrap, topic, group, total))
        first.terminate()
        first.wait(60)
        started = time.monotonic()
        second = subprocess.Popen(
            command, env=env, cwd=HERE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            asyncio.run(produce_one(broker.bootstrap, topic))
            asyncio.run(wait_committed(broker.bootstrap, topic, group, total + 1))
            return time.monotonic() - started
        finally:
            second.terminate()
            second.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "restart.json")
    args = parser.parse_args()
    result = {"messages": args.messages}
    for store in ("memory://", "rocksdb://"):
        result[store] = restart_seconds(store, args.messages)
        print(f"{store:<12} restart {result[store]:.1f} s")
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
