"""Records a real ingest and a real worker put on every topic match the published schemas.

The schemas are checked with jsonschema, then with ajv (strict, the validator of the tools/
folder), and each process's /metrics with promtool, at the end: without those tools the test
skips only that part (tests/contracts/tools.py says how to install them).
"""

import asyncio
import time

import httpx
import msgspec
import pytest

from devtools.tansu import free_port
from docgen import schemas as contracts
from features.batch import build_dataset
from messagehooks.kafka import make_producer
from messagehooks.schema import Message
from tests.conftest import broker_env
from tests.contracts.tools import ajv_check, promtool_check
from tests.integration.kafka_read import read_topic, validate_record
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.integration.traffic import conversation_traffic, deliveries

pytestmark = pytest.mark.integration

GAP = 2.0
GARBAGE_KEY = "contract-garbage"
# Records no ingest would write; the second is not UTF-8 (a UTF-16 BOM), so it is dead-lettered
# as base64, yet json.loads still reads it back here.
GARBAGE = [b'{"not": "a message"}', '{"not": "utf-8"}'.encode("utf-16")]


def _strict(records: list[dict], topic: str, sample: dict[str, list[dict]]) -> list[dict]:
    """Every record carries schema_version and matches the topic's schema (none is skipped).

    The values are added to `sample`, by schema file, for ajv.
    """
    values = sample.setdefault(contracts.schema_filename(topic.rpartition(".")[2]), [])
    for record in records:
        value = {k: v for k, v in record.items() if not k.startswith("_")}
        assert "schema_version" in value, f"{topic} record without schema_version: {value}"
        validate_record(topic, value, where=f"{topic}[{record['_partition']}]@{record['_offset']}")
        values.append(value)
    return records


def _metrics(port: int, timeout: float = 30.0) -> str:
    """The exposition text of the /metrics endpoint on `port`, once it answers."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
            if response.status_code == 200:
                return response.text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


async def _produce_garbage(bootstrap: str, topic: str) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for value in GARBAGE:
            await producer.send_and_wait(topic, value, key=GARBAGE_KEY.encode())
    finally:
        await producer.stop()


def _read(bootstrap: str, topic: str, expect: int, timeout: float = 30.0) -> list[dict]:
    return asyncio.run(read_topic(bootstrap, topic, expect=expect, timeout=timeout, validate=False))


def test_every_topic_carries_records_of_its_schema(broker, unique, tmp_path):
    prefix = f"ct{unique}."
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": prefix,
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
        "MESSAGEHOOKS_WORKER_ID": f"w{unique}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(GAP),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "0.5",
    }
    sample: dict[str, list[dict]] = {}
    worker_port, sink_port = free_port(), free_port()
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    worker = sink = None
    try:
        ingest.wait_ready()
        worker = WorkerProcess(
            {
                **env,
                "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "w"),
                "MESSAGEHOOKS_WORKER_METRICS_PORT": str(worker_port),
            },
            tmp_path / "w.log",
        ).start()
        sink_env = {
            "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "s"),
            "MESSAGEHOOKS_SINK_METRICS_PORT": str(sink_port),
        }
        sink = SinkProcess(
            {**env, **sink_env, "MESSAGEHOOKS_SINK_GROUP": f"s{unique}"}, tmp_path / "s.log"
        ).start()
        bodies = deliveries(conversation_traffic(4, seed=11), seed=12)
        with httpx.Client(base_url=ingest.url, timeout=10) as client:
            assert {client.post("/hooks/default", content=body).status_code for body in bodies} == {200}
            assert client.post("/hooks/default", content=b"{oops").status_code == 400
            assert (
                client.post("/hooks/default", content=b'{"messages": [{"type": "text"}]}').status_code == 422
            )
        asyncio.run(_produce_garbage(broker.bootstrap, f"{prefix}messages"))
        bootstrap = broker.bootstrap

        messages = _read(bootstrap, f"{prefix}messages", len(bodies) + len(GARBAGE))
        garbage = [r for r in messages if r["_key"] == GARBAGE_KEY]
        assert len(garbage) == len(GARBAGE)
        messages = _strict([r for r in messages if r["_key"] != GARBAGE_KEY], f"{prefix}messages", sample)
        assert all(r["_key"] == r["chat_id"] for r in messages)
        events = _strict(_read(bootstrap, f"{prefix}events", 1), f"{prefix}events", sample)
        assert events
        assert all(r["type"] == "event" and r["_key"] == r["chat_id"] for r in events)
        raw = _strict(_read(bootstrap, f"{prefix}raw", len(bodies)), f"{prefix}raw", sample)
        assert len(raw) == len(bodies)
        chats_of_request: dict[str, set[str]] = {}
        for m in messages:
            chats_of_request.setdefault(m["request_id"], set()).add(m["chat_id"])
        assert all(r["_key"] in chats_of_request[r["request_id"]] for r in raw)  # keyed by its chat

        as_messages = [
            msgspec.convert({k: v for k, v in r.items() if not k.startswith("_") and k != "raw"}, Message)
            for r in messages
        ]
        pairs, conversations = build_dataset(as_messages, conversation_gap=GAP, context_turns=3)
        got_pairs = _strict(
            _read(bootstrap, f"{prefix}turn-pairs", len(pairs), 60), f"{prefix}turn-pairs", sample
        )
        assert {p["pair_id"] for p in got_pairs} == {p.pair_id for p in pairs}
        got_conversations = _strict(
            _read(bootstrap, f"{prefix}conversations", len(conversations), 60),
            f"{prefix}conversations",
            sample,
        )
        assert {c["conversation_id"] for c in got_conversations} == {c.conversation_id for c in conversations}

        dead = _strict(_read(bootstrap, f"{prefix}dead-letter", 4, 60), f"{prefix}dead-letter", sample)
        from_ingest = sorted((r["reason"], r["_key"]) for r in dead if "request_id" in r)
        assert from_ingest == [("invalid_message", "default"), ("malformed_json", "default")]
        from_worker = sorted((r["reason"], r["original_encoding"], r["_key"]) for r in dead if "topic" in r)
        assert from_worker == [
            ("undecodable_record", "base64", "streams"),
            ("undecodable_record", "utf-8", "streams"),
        ]

        for name, port in (("ingest", ingest.port), ("worker", worker_port), ("sink", sink_port)):
            promtool_check(_metrics(port), f"the {name}'s /metrics")
        assert sorted(sample) == sorted(map(contracts.schema_filename, contracts.topic_names()))
        out = ajv_check(contracts.SCHEMA_DIR, tmp_path, sample)
        assert all(f"{name}: {len(values)} records checked" in out for name, values in sample.items())
    finally:
        for child in (sink, worker):
            if child is not None:
                child.kill9()
        ingest.stop()
