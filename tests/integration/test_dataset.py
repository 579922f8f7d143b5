"""The whole pipeline into Delta: POST -> ingest -> broker -> worker -> sink -> tables (docs/dataset.md).

Real processes on the real broker; the oracle is `features.batch` over exactly what the ingest
published, and `messagehooks backfill` over the raw topic.
"""

import asyncio
import dataclasses
import io
import threading
import time

import httpx
import msgspec
import pytest

from dataset import store
from dataset.backfill import backfill
from features.batch import build_dataset
from messagehooks.pii import mask_pii
from messagehooks.schema import Message
from messagehooks.settings import load_settings
from tests.conftest import broker_env
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess, pipeline_env
from tests.integration.traffic import conversation_traffic, deliveries
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

GAP = 3.0
LATENESS = 1.0
PROVENANCE = ["source_partition", "source_offset"]


@pytest.fixture
def pipeline(broker, unique, tmp_path):
    env = pipeline_env(
        broker_env(broker), f"ds{unique}", tmp_path / "data", gap=GAP, lateness=LATENESS, partitions=3
    )
    # Pseudonymous ids: the ingest and the backfill (same settings) must derive the same.
    env["MESSAGEHOOKS_ID_SALT"] = f"salt-{unique}"
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    ingest.wait_ready()
    started: list = []

    def start(kind: type, name: str):
        process = kind(env, tmp_path / f"{name}.log").start()
        started.append(process)
        return process

    settings = load_settings({**env, "MESSAGEHOOKS_KAFKA_BOOTSTRAP": broker.bootstrap})
    yield ingest, start, settings
    for process in started:
        process.kill9()
    ingest.stop()


def _post_all(ingest: IngestProcess, bodies: list[bytes], pace: float = 0.0) -> None:
    with httpx.Client(base_url=ingest.url, timeout=10) as client:
        for body in bodies:
            assert client.post("/hooks/default", content=body).status_code == 200
            time.sleep(pace)


def _published(settings, count: int) -> list[Message]:
    records = asyncio.run(read_topic(settings.bootstrap, settings.topics.messages, expect=count, timeout=30))
    return [
        msgspec.convert({k: v for k, v in r.items() if not k.startswith("_") and k != "raw"}, Message)
        for r in records
    ]


def _rows(settings, table: str) -> list[dict]:
    if not store.exists(settings.dataset_root, table):
        return []
    return store.open_table(settings.dataset_root, table).to_pyarrow_table().to_pylist()


def _wait_rows(settings, table: str, count: int, timeout: float = 60.0) -> list[dict]:
    rows = _rows(settings, table)

    def enough() -> bool:
        nonlocal rows
        rows = _rows(settings, table)
        return len(rows) >= count

    eventually(enough, timeout=timeout, interval=0.3)
    return rows


def _by(rows: list[dict], key: tuple[str, ...], drop: tuple[str, ...] = ()) -> dict[tuple, dict]:
    return {tuple(r[k] for k in key): {k: v for k, v in r.items() if k not in drop} for r in rows}


def _expected_pairs(messages: list[Message]) -> tuple[dict, dict]:
    pairs, conversations = build_dataset(messages, conversation_gap=GAP, context_turns=3)
    return {p.pair_id: p for p in pairs}, {c.conversation_id: c for c in conversations}


def test_post_to_every_table_and_backfill_equals_the_stream(pipeline, tmp_path):
    ingest, start, settings = pipeline
    start(WorkerProcess, "worker")
    start(SinkProcess, "sink")
    messages = conversation_traffic(12, seed=7, spacing=0.05)
    messages.append(
        landbot_message(
            chat=990_001,
            ts=messages[0]["timestamp"],
            type="text",
            sender_type="customer",
            body="write to ana.lopez@example.es or call +34 600 11 22 33",
            uuid="pii-1",
        )
    )
    # A uuid names one message, yet the same one in two chats is two messages; a chat id with
    # surrounding spaces is the same chat as without them (docs/ingest.md, "Id").
    for chat in (990_003, 990_004):
        messages.append(
            landbot_message(chat=chat, ts=messages[0]["timestamp"], body="same uuid", uuid="shared")
        )
    messages.append(
        landbot_message(chat=" 990005", ts=messages[0]["timestamp"], body="question", uuid="sp-1")
    )
    messages.append(
        landbot_message(
            chat=990_005, ts=messages[0]["timestamp"] + 1, sender_type="bot", body="answer", uuid="sp-2"
        )
    )
    bodies = deliveries(messages, seed=7)
    _post_all(ingest, bodies)
    # Authenticated but invalid: a dead letter, and the valid message beside it is kept.
    bad = landbot_body(
        landbot_message(chat=990_002, type="text", sender_type="customer", body="ok", uuid="v-1")
    )
    bad["messages"].append({"type": 5})
    with httpx.Client(base_url=ingest.url, timeout=10) as client:
        assert client.post("/hooks/default", json=bad).status_code == 200

    chat = settings.pseudonyms.chat  # the salted pseudonym every record carries for a chat id
    unique_ids = {(chat(str(m["_raw"]["chat"]).strip()), m["_raw"]["uuid"]) for m in messages}
    unique_ids |= {(chat("990002"), "v-1")}
    published = _published(settings, len(bodies) + 1)
    pairs, conversations = _expected_pairs(published)

    got_messages = _wait_rows(settings, "messages", len(unique_ids))
    got_pairs = _wait_rows(settings, "turn_pairs", len(pairs))
    got_conversations = _wait_rows(settings, "conversations", len(conversations))
    got_dead = _wait_rows(settings, "dead_letters", 1)

    assert sorted((r["chat_id"], r["message_id"]) for r in got_messages) == sorted(unique_ids)
    assert sorted(r["chat_id"] for r in got_messages if r["message_id"] == "shared") == sorted(
        [chat("990003"), chat("990004")]
    )
    spaced = next(p for p in got_pairs if p["chat_id"] == chat("990005"))
    assert (spaced["prompt_text"], spaced["response_text"]) == ("question", "answer")
    assert not any(r["late"] for r in got_messages)
    assert sorted(r["pair_id"] for r in got_pairs) == sorted(pairs)
    assert sorted(r["conversation_id"] for r in got_conversations) == sorted(conversations)
    for table, rows in [
        ("messages", got_messages),
        ("turn_pairs", got_pairs),
        ("conversations", got_conversations),
        ("dead_letters", got_dead),
    ]:
        assert list(rows[0]) == store.spec(table).schema.names
    assert [(r["reason"], r["source"], r["hook"]) for r in got_dead] == [
        ("invalid_message", "ingest", "default")
    ]
    # Field by field against the batch oracle (text masked the same way).
    for row in got_pairs:
        expected = pairs[row["pair_id"]]
        assert row["prompt_text"] == mask_pii(expected.prompt_text)
        assert row["response_text"] == (
            None if expected.response_text is None else mask_pii(expected.response_text)
        )
        assert (row["answered"], row["latency_s"], row["pair_index"]) == (
            expected.answered,
            expected.latency_s,
            expected.pair_index,
        )
        assert row["date"] == store.event_date(expected.prompt_ts)
    pii = next(r for r in got_messages if r["message_id"] == "pii-1")
    assert pii["body"] == "write to <EMAIL> or call <PHONE>"
    # No Landbot chat number in any id: every chat id is the salted pseudonym, pair and
    # conversation ids are built from it.
    landbot_chats = {str(m["_raw"]["chat"]) for m in messages}
    for row in got_messages + got_pairs + got_conversations:
        assert row["chat_id"].startswith("p-")
        assert row["chat_id"] not in landbot_chats
    assert not any(r["pair_id"].split(":")[0] in landbot_chats for r in got_pairs)

    # Rebuilt in batch from the raw topic: the same rows as the stream wrote.
    rebuilt = dataclasses.replace(settings, dataset_uri=str(tmp_path / "backfilled"))
    out = io.StringIO()
    result = backfill(rebuilt, from_topic=settings.topics.raw, out=out)
    assert "backfill: done" in out.getvalue()
    assert result.messages == len(unique_ids)
    for table in ("messages", "turn_pairs", "conversations"):
        streamed = _by(_rows(settings, table), store.spec(table).id_columns, drop=tuple(PROVENANCE))
        batch = _by(_rows(rebuilt, table), store.spec(table).id_columns, drop=tuple(PROVENANCE))
        assert batch == streamed, table


def test_kill_9_of_worker_and_sink_twice_loses_and_duplicates_nothing(pipeline):
    ingest, start, settings = pipeline
    worker = start(WorkerProcess, "worker-1")
    sink = start(SinkProcess, "sink-1")
    messages = conversation_traffic(250, seed=11, spacing=0.02)
    bodies = deliveries(messages, seed=11)
    poster = threading.Thread(target=_post_all, args=(ingest, bodies, 0.008))
    poster.start()
    written = 0
    for round_ in (2, 3):
        # Kill while rows are flowing: once pairs have grown since the last restart.
        rows = _wait_rows(settings, "turn_pairs", written + 20, timeout=60)
        assert len(rows) > written, "the worker and sink wrote no pairs before the kill"
        written = len(rows)
        worker.kill9()
        sink.kill9()
        worker = start(WorkerProcess, f"worker-{round_}")
        sink = start(SinkProcess, f"sink-{round_}")
    assert poster.is_alive(), "traffic ended before the last kill: post more or pace slower"
    poster.join(120)
    assert not poster.is_alive()

    unique_ids = {m["_raw"]["uuid"] for m in messages}
    pairs, conversations = _expected_pairs(_published(settings, len(bodies)))
    got_messages = _wait_rows(settings, "messages", len(unique_ids), timeout=90)
    got_pairs = _wait_rows(settings, "turn_pairs", len(pairs), timeout=90)
    got_conversations = _wait_rows(settings, "conversations", len(conversations), timeout=60)
    time.sleep(1.5)  # a duplicate committed late would show up now
    got_messages, got_pairs = _rows(settings, "messages"), _rows(settings, "turn_pairs")
    got_conversations = _rows(settings, "conversations")

    message_ids = [r["message_id"] for r in got_messages]
    pair_ids = [r["pair_id"] for r in got_pairs]
    conversation_ids = [r["conversation_id"] for r in got_conversations]
    assert len(message_ids) == len(set(message_ids)), "duplicate message_id"
    assert len(pair_ids) == len(set(pair_ids)), "duplicate pair_id"
    assert len(conversation_ids) == len(set(conversation_ids)), "duplicate conversation_id"
    assert set(message_ids) == unique_ids
    assert set(pair_ids) == set(pairs)
    assert set(conversation_ids) == set(conversations)
    versions = store.versions(settings.dataset_root, "turn_pairs")
    assert len(versions) >= 3
