"""Records a real ingest and a real worker put on every topic match the published schemas."""

import asyncio

import httpx
import msgspec
import pytest

from features.batch import build_dataset
from messagehooks.kafka import make_producer
from messagehooks.schema import Message
from tests.conftest import broker_env
from tests.integration.kafka_read import read_topic, validate_record
from tests.integration.processes import IngestProcess, WorkerProcess
from tests.integration.traffic import conversation_traffic, deliveries

pytestmark = pytest.mark.integration

GAP = 2.0
GARBAGE_KEY = "contract-garbage"
# Records no ingest would write; the second is not UTF-8 (a UTF-16 BOM), so it is dead-lettered
# as base64, yet json.loads still reads it back here.
GARBAGE = [b'{"not": "a message"}', '{"not": "utf-8"}'.encode("utf-16")]


def _strict(records: list[dict], topic: str) -> list[dict]:
    """Every record carries schema_version and matches the topic's schema (none is skipped)."""
    for record in records:
        value = {k: v for k, v in record.items() if not k.startswith("_")}
        assert "schema_version" in value, f"{topic} record without schema_version: {value}"
        validate_record(topic, value, where=f"{topic}[{record['_partition']}]@{record['_offset']}")
    return records


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
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    worker = None
    try:
        ingest.wait_ready()
        worker = WorkerProcess(
            {**env, "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "w")}, tmp_path / "w.log"
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
        messages = _strict([r for r in messages if r["_key"] != GARBAGE_KEY], f"{prefix}messages")
        assert all(r["_key"] == r["chat_id"] for r in messages)
        events = _strict(_read(bootstrap, f"{prefix}events", 1), f"{prefix}events")
        assert events
        assert all(r["type"] == "event" and r["_key"] == r["chat_id"] for r in events)
        raw = _strict(_read(bootstrap, f"{prefix}raw", len(bodies)), f"{prefix}raw")
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
        got_pairs = _strict(_read(bootstrap, f"{prefix}turn-pairs", len(pairs), 60), f"{prefix}turn-pairs")
        assert {p["pair_id"] for p in got_pairs} == {p.pair_id for p in pairs}
        got_conversations = _strict(
            _read(bootstrap, f"{prefix}conversations", len(conversations), 60), f"{prefix}conversations"
        )
        assert {c["conversation_id"] for c in got_conversations} == {c.conversation_id for c in conversations}

        dead = _strict(_read(bootstrap, f"{prefix}dead-letter", 4, 60), f"{prefix}dead-letter")
        from_ingest = sorted((r["reason"], r["_key"]) for r in dead if "request_id" in r)
        assert from_ingest == [("invalid_message", "default"), ("malformed_json", "default")]
        from_worker = sorted((r["reason"], r["original_encoding"], r["_key"]) for r in dead if "topic" in r)
        assert from_worker == [
            ("undecodable_record", "base64", "streams"),
            ("undecodable_record", "utf-8", "streams"),
        ]
    finally:
        if worker is not None:
            worker.kill9()
        ingest.stop()
