"""Stream worker throughput vs a minimal Faust forward agent and a raw aiokafka consumer.

A topic is pre-filled with N realistic normalized messages; each consumer reads it in a fresh
group. Throughput = messages between the first and the last committed-offset change / the
time between them (start-up and group join excluded). Configurations run round-robin.
Run: .venv/bin/python -m benchmarks.bench_stream [--messages 30000] [--repeat 3] [--engine kafka]
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.engine import add_engine_option, broker_env, started_broker
from messagehooks.kafka import ensure_topics, make_producer
from messagehooks.schema import encode_message
from messagehooks.settings import Hook
from messagehooks.validation import normalize
from tests.integration.traffic import conversation_traffic

HERE = Path(__file__).resolve().parent
PARTITIONS = 6


async def prefill(bootstrap: str, topic: str, count: int) -> int:
    """Produce about `count` normalized messages (whole chats), pipelined; returns how many."""
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS)
    producer = make_producer(bootstrap, linger_ms=5, max_batch_size=262144)
    await producer.start()
    sent = 0
    seed = 0
    try:
        while sent < count:
            seed += 1
            traffic = conversation_traffic(200, seed=seed, start=time.time() + seed * 10)
            futures = []
            for raw in traffic:
                message = normalize(
                    json.dumps(raw).encode(), hook=Hook("bench"), received_at=time.time(), request_id="bench"
                )
                futures.append(
                    await producer.send(topic, encode_message(message), key=message.chat_id.encode())
                )
            await asyncio.gather(*futures)
            sent += len(traffic)
    finally:
        await producer.stop()
    return sent


async def committed_total(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    total = 0
    for tp in partitions:
        total += (await consumer.committed(tp)) or 0
    return total


async def measure_group(bootstrap: str, topic: str, group: str, total: int, timeout: float) -> float:
    """Messages/s of whoever consumes `topic` in `group`, from its committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    first: tuple[float, int] | None = None
    last: tuple[float, int] | None = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            done = await committed_total(consumer, partitions)
            now = time.monotonic()
            if done and first is None:
                first = (now, done)
            if done and (last is None or done != last[1]):
                last = (now, done)
            if done >= total:
                break
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    if first is None or last is None or last[0] <= first[0]:
        raise RuntimeError(f"group {group} committed too little to measure ({last})")
    return (last[1] - first[1]) / (last[0] - first[0])


def run_faust(
    command: list[str], env: dict[str, str], bootstrap: str, topic: str, total: int, copies: int = 1
) -> float:
    """Messages/s of `copies` processes of `command` sharing one group (Faust's app id)."""
    group = env["MESSAGEHOOKS_WORKER_ID"]
    with tempfile.TemporaryDirectory(prefix=f"{group}-") as data_root:
        processes = [
            subprocess.Popen(
                command,
                env={**os.environ, **env, "MESSAGEHOOKS_DATA_DIR": f"{data_root}/{i}"},
                cwd=HERE.parent,
                start_new_session=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(copies)
        ]
        try:
            return asyncio.run(measure_group(bootstrap, topic, group, total, timeout=300))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


async def raw_consume(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        while seen < total:
            batches = await consumer.getmany(timeout_ms=500, max_records=10000)
            seen += sum(len(records) for records in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stream.json")
    parser.add_argument("--two-workers", action="store_true", help="also run 2 workers in one group")
    add_engine_option(parser)
    args = parser.parse_args()
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    topic = prefix + "messages"
    runs: dict[str, list[float]] = {"stream": [], "faust_forward": [], "raw_consume": []}
    with started_broker(args.engine) as broker:
        total = asyncio.run(prefill(broker.bootstrap, topic, args.messages))
        prefix2, total2 = f"bench2{uuid.uuid4().hex[:6]}.", 0
        if args.two_workers:
            total2 = asyncio.run(prefill(broker.bootstrap, prefix2 + "messages", 4 * args.messages))
            asyncio.run(
                ensure_topics(
                    broker.bootstrap,
                    [prefix2 + t for t in ("turn-pairs", "conversations", "dead-letter")],
                    partitions=PARTITIONS,
                )
            )
        asyncio.run(
            ensure_topics(
                broker.bootstrap,
                [prefix + t for t in ("turn-pairs", "conversations", "dead-letter", "forwarded")],
                partitions=PARTITIONS,
            )
        )
        # No metrics servers: two workers on one host would both want port 9101, and a taken port
        # stops a worker (docs/operations.md, Ports).
        base = {**broker_env(broker), "MESSAGEHOOKS_TOPIC_PREFIX": prefix,
                "MESSAGEHOOKS_PARTITIONS": str(PARTITIONS), "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
                "MESSAGEHOOKS_WORKER_METRICS_PORT": "0"}  # fmt: skip
        for _ in range(args.repeat):
            env = {**base, "MESSAGEHOOKS_WORKER_ID": f"stream-{uuid.uuid4().hex[:6]}"}
            runs["stream"].append(
                run_faust(
                    [sys.executable, "-m", "messagehooks", "worker"], env, broker.bootstrap, topic, total
                )
            )
            env = {**base, "MESSAGEHOOKS_WORKER_ID": f"forward-{uuid.uuid4().hex[:6]}"}
            runs["faust_forward"].append(
                run_faust(
                    [sys.executable, "-m", "benchmarks.faust_forward"], env, broker.bootstrap, topic, total
                )
            )
            runs["raw_consume"].append(asyncio.run(raw_consume(broker.bootstrap, topic, total)))
            if args.two_workers:
                # Scale-out: 1 then 2 workers on a topic 4x longer (2 workers would finish the
                # short one within a commit or two), both in fresh groups.
                big = {**base, "MESSAGEHOOKS_TOPIC_PREFIX": prefix2}
                for copies, name in ((1, "one_worker_long"), (2, "two_workers")):
                    env = {**big, "MESSAGEHOOKS_WORKER_ID": f"{name}-{uuid.uuid4().hex[:6]}"}
                    command = [sys.executable, "-m", "messagehooks", "worker"]
                    runs.setdefault(name, []).append(
                        run_faust(command, env, broker.bootstrap, prefix2 + "messages", total2, copies)
                    )
    median = {name: statistics.median(values) for name, values in runs.items()}
    result = {
        "engine": args.engine,
        "messages": total,
        "stream_msgs_per_s": median["stream"],
        "faust_forward_msgs_per_s": median["faust_forward"],
        "raw_consume_msgs_per_s": median["raw_consume"],
        "stream_vs_faust_forward": median["stream"] / median["faust_forward"],
        "stream_vs_raw_consume": median["stream"] / median["raw_consume"],
        **(
            {
                "stream_two_workers_msgs_per_s": median["two_workers"],
                "two_workers_vs_one": median["two_workers"] / median["one_worker_long"],
            }
            if "two_workers" in median
            else {}
        ),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    for name, value in median.items():
        print(f"{name:<16}{value:>12.0f} msg/s")
    print(
        f"stream_vs_faust_forward={result['stream_vs_faust_forward']:.2f} "
        f"stream_vs_raw_consume={result['stream_vs_raw_consume']:.3f}"
    )


if __name__ == "__main__":
    main()
