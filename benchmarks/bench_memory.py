"""Worker memory per open conversation: RSS growth of a real worker holding N open chats.

A pre-filled `messages` topic holds N chats of two messages each (a bot greeting and the
customer's answer, seconds apart: every conversation stays open, the gap is 30 min). A fresh
worker reads it; RSS is sampled after start-up (before it gets a record: the topic is filled
only once the worker has joined) and after it has processed every record.
bytes_per_open_conversation = (RSS after - RSS before) / N.
Run: .venv/bin/python -m benchmarks.bench_memory [--chats 100000]
"""

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.engine import broker_env
from devtools.tansu import EmbeddedBroker
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Settings
from tests.factories import message
from tests.integration.processes import WorkerProcess

HERE = Path(__file__).resolve().parent


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def fill(settings: Settings, chats: int) -> int:
    producer = make_producer(settings.bootstrap, linger_ms=5, max_batch_size=262144)
    await producer.start()
    now = time.time()
    sent = 0
    try:
        futures = []
        for chat in range(chats):
            for offset, role in enumerate(("bot", "customer")):
                m = message(chat=f"mem-{chat}", role=role, ts=now + offset * 5, body="Hi! How can I help?")
                futures.append(
                    await producer.send(settings.topics.messages, encode_message(m), key=m.chat_id.encode())
                )
                sent += 1
            if len(futures) > 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def committed(settings: Settings) -> int:
    """Offsets the worker's group has committed on `messages`, summed over partitions."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap, group_id=settings.worker_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.messages, p) for p in range(settings.partitions)]
        total = 0
        for tp in tps:
            total += (await consumer.committed(tp)) or 0
        return total
    finally:
        await consumer.stop()


def measure(chats: int, tmp: Path) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    with EmbeddedBroker() as broker:
        settings = Settings(kafka_bootstrap=broker.bootstrap, topic_prefix=f"bm{run}.", worker_id=f"mem{run}")
        asyncio.run(ensure_project_topics(settings))
        env = {
            **broker_env(broker),  # with the engine: `auto` would mean Kafka where Java is
            "MESSAGEHOOKS_TOPIC_PREFIX": settings.topic_prefix,
            "MESSAGEHOOKS_WORKER_ID": settings.worker_id,
            "MESSAGEHOOKS_DATA_DIR": str(tmp / "data"),
            "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
        }
        worker = WorkerProcess(env, tmp / "worker.log").start()
        try:
            time.sleep(12)  # joined, recovered an empty table, idle
            before = rss_bytes(worker.process.pid)
            total = asyncio.run(fill(settings, chats))
            deadline = time.monotonic() + 900
            while asyncio.run(committed(settings)) < total and time.monotonic() < deadline:
                time.sleep(2)
            time.sleep(3)
            after = rss_bytes(worker.process.pid)
        finally:
            worker.stop()
    return {
        "open_conversations": float(chats),
        "bytes_per_open_conversation": (after - before) / chats,
        "worker_rss_mb": after / 2**20,
        "worker_rss_idle_mb": before / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.chats, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for key, value in result.items():
        print(f"{key:32} {value:14.1f}")


if __name__ == "__main__":
    main()
