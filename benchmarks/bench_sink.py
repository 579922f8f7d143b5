"""Dataset sink throughput into Delta, and the end-to-end delay POST -> row readable in Delta.

sink: the `turn-pairs` topic is pre-filled with N distinct pairs; a fresh `DatasetSink` (default
flush interval and rows) writes them; rows/s = N / (last commit - first record consumed), so
start-up and group join are excluded, and the last partial batch's wait for the interval is in.
Ceiling, same run: the same rows appended by `store.write` in commits of the batch size the sink
reached (Delta alone, no Kafka).

e2e: broker + ingest + worker + sink as real processes; chats are POSTed one message per request
at a steady rate; each message's delay = first time a poll of the `messages` table sees its row
minus the time its POST was answered, and each pair's = first time `turn_pairs` shows it minus
the answer to the POST that made it final (found by running the stream's state machine over the
POSTs; the allowed lateness is 0 here: with the default 10 s a pair waits for a message 10 s of
event time newer, by design).
Run: .venv/bin/python -m benchmarks.bench_sink [--pairs 50000] [--rate 200] [--seconds 20] [--engine kafka]
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import msgspec

from benchmarks.engine import add_engine_option, broker_env, broker_settings, started_broker
from dataset import store
from dataset.rows import masker, pair_row
from dataset.sink import DatasetSink
from devtools.brokers import OwnBroker
from features.batch import build_dataset
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.settings import Hook, Settings
from messagehooks.validation import normalize
from streams.codec import encode_record
from streams.sessions import ChatState, SessionSettings, step
from tests.factories import example_chat
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.integration.traffic import conversation_traffic

HERE = Path(__file__).resolve().parent


def distinct_pairs(count: int) -> list[bytes]:
    """`count` turn-pair records with distinct ids (one realistic pair, re-keyed)."""
    pairs, _ = build_dataset(example_chat("1"))
    out = []
    for i in range(count):
        pair = pairs[i % len(pairs)]
        out.append(encode_record(msgspec.structs.replace(pair, pair_id=f"{pair.pair_id}:{i}")))
    return out


async def prefill_pairs(settings: Settings, values: list[bytes]) -> None:
    await ensure_project_topics(settings)
    producer = make_producer(settings.bootstrap, linger_ms=5, max_batch_size=262144)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topics.turn_pairs, value, key=str(i % 97).encode())
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def measure_sink(settings: Settings, total: int) -> dict[str, float]:
    sink = DatasetSink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    first_record: float | None = None
    deadline = time.monotonic() + 600
    while sink.stats.rows < total and time.monotonic() < deadline and not task.done():
        await asyncio.wait([task], timeout=0.002)
        if first_record is None and sink.stats.records:
            first_record = time.perf_counter()
    finished = time.perf_counter()
    stop.set()
    await task
    if first_record is None or sink.stats.rows < total:
        raise RuntimeError(f"the sink wrote {sink.stats.rows} of {total} rows")
    return {
        "sink_rows_per_s": total / (finished - first_record),
        "sink_batch_rows": float(sink.stats.largest_commit),
        "sink_commits": float(sink.stats.commits),
        "sink_seconds_per_commit": sink.stats.commit_seconds / sink.stats.commits,
    }


def measure_delta_ceiling(root: str, values: list[bytes], batch: int) -> float:
    """Rows/s of plain Delta appends of the same rows, `batch` rows per commit."""
    mask = masker(True)
    rows = [pair_row(value, mask) for value in values]
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        store.write(root, "turn_pairs", store.rows_to_arrow("turn_pairs", rows[i : i + batch]))
    return len(rows) / (time.perf_counter() - started)


def sink_benchmark(broker: OwnBroker, total: int, tmp: Path) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    settings = broker_settings(
        broker,
        topic_prefix=f"bs{run}.",
        data_dir=tmp / f"sink-{run}",
        sink_group=f"bench-{run}",
    )
    values = distinct_pairs(total)
    asyncio.run(prefill_pairs(settings, values))
    result = asyncio.run(measure_sink(settings, total))
    ceiling = measure_delta_ceiling(
        str(tmp / f"ceiling-{run}"), values, max(1, int(result["sink_batch_rows"]))
    )
    result["delta_append_rows_per_s"] = ceiling
    result["sink_vs_delta_append"] = result["sink_rows_per_s"] / ceiling
    return result


def e2e_benchmark(broker: OwnBroker, rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"be{run}.",
        "MESSAGEHOOKS_DATA_DIR": str(tmp / f"e2e-{run}"),
        "MESSAGEHOOKS_WORKER_ID": f"bw{run}",
        "MESSAGEHOOKS_SINK_GROUP": f"bs{run}",
        "MESSAGEHOOKS_ALLOWED_LATENESS": "0",
        "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
    }
    root = str(tmp / f"e2e-{run}" / "datasets")
    ingest = IngestProcess(env, tmp / f"ingest-{run}.log").start()
    ingest.wait_ready()
    worker = WorkerProcess(env, tmp / f"worker-{run}.log").start()
    sink = SinkProcess(env, tmp / f"sink-{run}.log").start()
    try:
        chats = max(1, int(rate * seconds / 10))
        messages = conversation_traffic(chats, seed=1, spacing=0.3)
        messages.sort(key=lambda m: m["timestamp"])
        answered: dict[str, float] = {}
        posted: list[bytes] = []
        poster = threading.Thread(target=_post_paced, args=(ingest.url, messages, rate, answered, posted))
        time.sleep(8)  # the worker and the sink join their groups
        poster.start()
        seen_messages, seen_pairs = _poll_tables(root, len(messages), poster, timeout=seconds + 60)
        poster.join()
    finally:
        for process in (ingest, worker, sink):
            process.stop()
    message_delays = [seen_messages[i] - answered[i] for i in seen_messages if i in answered]
    pair_delays = _pair_delays(posted, answered, seen_pairs)
    return {
        "e2e_messages": float(len(message_delays)),
        "e2e_message_p50_s": _quantile(message_delays, 0.5),
        "e2e_message_p95_s": _quantile(message_delays, 0.95),
        "e2e_pairs": float(len(pair_delays)),
        "e2e_p50_s": _quantile(pair_delays, 0.5),
        "e2e_p95_s": _quantile(pair_delays, 0.95),
    }


def _post_paced(
    url: str, messages: list[dict], rate: float, answered: dict[str, float], posted: list[bytes]
) -> None:
    """POST each message at its slot, stamped with the current time (live traffic)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        started = time.perf_counter()
        for i, message in enumerate(messages):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            live = json.dumps({**message, "timestamp": now, "_raw": {**message["_raw"], "timestamp": now}})
            client.post("/hooks/default", content=f'{{"messages": [{live}]}}').raise_for_status()
            answered[message["_raw"]["uuid"]] = time.time()
            posted.append(live.encode())


def _poll_tables(root: str, total: int, poster, timeout: float) -> tuple[dict[str, float], dict[str, float]]:
    seen_messages: dict[str, float] = {}
    seen_pairs: dict[str, float] = {}
    versions = {"messages": -1, "turn_pairs": -1}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (poster.is_alive() or len(seen_messages) < total):
        for table, seen in (("messages", seen_messages), ("turn_pairs", seen_pairs)):
            if not store.exists(root, table):
                continue
            delta = store.open_table(root, table)
            if delta.version() == versions[table]:
                continue
            versions[table] = delta.version()
            now = time.time()
            key = store.spec(table).key
            for value in delta.to_pyarrow_table(columns=[key]).column(key).to_pylist():
                seen.setdefault(value, now)
        time.sleep(0.05)
    return seen_messages, seen_pairs


def _pair_delays(posted: list[bytes], answered: dict[str, float], seen: dict[str, float]) -> list[float]:
    """Delay from the answer to the POST whose message made each pair final.

    Which message that is comes from the stream's own state machine run over the POSTs in the
    order they were answered (one client, so the order the worker saw per chat).
    """
    settings = SessionSettings(allowed_lateness=0)
    states: dict[str, ChatState] = {}
    trigger: dict[str, str] = {}
    for body in posted:
        message = normalize(body, hook=Hook("default"), received_at=0.0, request_id="")
        state, out = step(states.get(message.chat_id), message, settings)
        states[message.chat_id] = state
        for pair in out.pairs:
            trigger[pair.pair_id] = message.message_id
    return [seen[pair] - answered[message] for pair, message in trigger.items() if pair in seen]


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]
        if len(values) > 1
        else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "sink.json")
    add_engine_option(parser)
    args = parser.parse_args()
    runs: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp, started_broker(args.engine) as broker:
        for _ in range(args.repeat):
            result = sink_benchmark(broker, args.pairs, Path(tmp))
            result.update(e2e_benchmark(broker, args.rate, args.seconds, Path(tmp)))
            runs.append(result)
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**median, "engine": args.engine, "sink_runs": runs}, indent=2))
    for key, value in median.items():
        print(f"{key:32} {value:12.3f}")


if __name__ == "__main__":
    main()
