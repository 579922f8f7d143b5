"""The ingest as a real uvicorn process against a real broker of each engine."""

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest

from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker, free_port
from tests.conftest import FIXTURES, broker_env
from tests.integration.engines import durable, own_broker
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess

pytestmark = pytest.mark.integration

TOKEN = "itest-token-5f4e3d2c"
TRACE = "fedcba9876543210fedcba9876543210"
BUTTON_BODY = (FIXTURES / "body_button_customer_docs.json").read_bytes()
AGENT_MESSAGE = json.loads((FIXTURES / "message_text_agent_real.json").read_bytes())


def _env(broker: EmbeddedBroker | KafkaBroker, prefix: str, data_dir) -> dict[str, str]:
    hooks = [{"name": "docs", "channel": 761536, "token": TOKEN}, {"name": "live", "tokens": [TOKEN]}]
    return {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": prefix,
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_DATA_DIR": str(data_dir),
        "MESSAGEHOOKS_HOOKS": json.dumps(hooks),
        "MESSAGEHOOKS_PRODUCE_TIMEOUT": "1.5",
    }


@pytest.fixture
def ingest(broker, unique, tmp_path):
    process = IngestProcess(_env(broker, f"t{unique}.", tmp_path), tmp_path / "ingest.log").start()
    process.wait_ready()
    process.prefix = f"t{unique}."
    yield process
    process.stop()


def _post(ingest: IngestProcess, hook: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{ingest.url}/hooks/{hook}",
        content=body,
        headers={"Authorization": f"Token {TOKEN}", **headers},
        timeout=10,
    )


def test_post_lands_on_the_topics_field_by_field(ingest, broker):
    first = _post(ingest, "docs", BUTTON_BODY, **{"sentry-trace": f"{TRACE}-0123456789abcdef-1"})
    second = _post(ingest, "live", json.dumps({"messages": [AGENT_MESSAGE]}).encode())
    event = {"type": "event", "timestamp": 1747943105, "action": "assign", "_raw": {"chat": 473716610}}
    third = _post(ingest, "live", json.dumps({"messages": [event]}).encode())
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]

    messages = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}messages", expect=3))
    by_id = {m["message_id"]: m for m in messages}
    assert len(messages) == len(by_id) == 3
    (button,) = [m for m in messages if m["type"] == "button"]
    assert button["message_id"].startswith("hash-")  # no uuid: a hash of the message
    expected_button = {
        "chat_id": "65363911", "hook": "docs", "type": "button", "role": "customer",
        "timestamp": 1606145527.9043446, "sender_id": "65462634", "channel_id": "761536",
        "body": "hi!", "payload": "$0", "country": "spain", "options": [], "action": None,
        "request_id": first.json()["request_id"], "schema_version": 1, "_key": "65363911",
    }  # fmt: skip
    assert {k: button[k] for k in expected_button} == expected_button
    assert button["raw"] == json.loads(BUTTON_BODY)["messages"][0]
    agent = by_id["f00627c8-394f-493b-b8a5-e9cd44b5c319"]
    assert (agent["chat_id"], agent["_key"], agent["role"], agent["body"]) == (
        "473716610",
        "473716610",
        "agent",
        "hello world",
    )
    assert agent["raw"] == AGENT_MESSAGE

    events = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}events", expect=1))
    assert [(e["action"], e["_key"]) for e in events] == [("assign", "473716610")]
    raw = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}raw", expect=3))
    assert sorted(r["request_id"] for r in raw) == sorted(
        r.json()["request_id"] for r in (first, second, third)
    )
    assert {r["_key"] for r in raw} == {"65363911", "473716610"}  # chat ids, not hook names
    assert TOKEN not in ingest.logs()


def test_a_landbot_retry_gets_the_same_id(ingest, broker):
    headers = {"sentry-trace": f"{TRACE}-0000000000000001-1"}
    assert _post(ingest, "docs", BUTTON_BODY, **headers).status_code == 200
    retry_headers = {"sentry-trace": f"{TRACE}-0000000000000001-1"}
    assert _post(ingest, "docs", BUTTON_BODY, **retry_headers).status_code == 200
    no_trace = [_post(ingest, "docs", BUTTON_BODY).status_code for _ in range(2)]
    assert no_trace == [200, 200]
    messages = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}messages", expect=4))
    ids = [m["message_id"] for m in messages]
    assert len(ids) == 4
    assert len(set(ids)) == 1  # the header does not change the id
    assert ids[0].startswith("hash-")


@pytest.mark.parametrize(
    ("hook", "body", "status", "reason"),
    [
        ("docs", b"{oops", 400, "malformed_json"),
        ("docs", b'{"messages": [{"type": "text"}]}', 422, "invalid_message"),
        ("docs", json.dumps({"messages": [AGENT_MESSAGE]}).encode(), 422, "channel_mismatch"),
    ],
)
def test_error_paths_answer_json_and_dead_letter(ingest, broker, hook, body, status, reason):
    response = _post(ingest, hook, body)
    assert response.status_code == status
    assert response.json()["error"] == reason
    (record,) = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}dead-letter", expect=1))
    assert (record["reason"], record["_key"]) == (reason, hook)
    # The whole body when the envelope is bad, else the offending message's own bytes.
    original = record["original"].encode()
    assert (
        original == body
        if record["message_index"] is None
        else json.loads(original) == json.loads(body)["messages"][0]
    )
    assert record["request_id"] == response.json()["request_id"]


def test_unauthenticated_and_unknown_hook_store_nothing(ingest, broker):
    assert (
        httpx.post(
            f"{ingest.url}/hooks/docs", content=BUTTON_BODY, headers={"Authorization": "Token x"}
        ).status_code
        == 401
    )
    assert _post(ingest, "missing", BUTTON_BODY).status_code == 404
    assert asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}dead-letter", expect=1, timeout=2)) == []
    assert asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}raw", expect=1, timeout=2)) == []


def _chat_messages(chat: int, count: int) -> list[bytes]:
    return [
        json.dumps(
            {"messages": [{"type": "text", "timestamp": 1000 + i, "data": {"body": f"m{i}"},
                           "sender": {"id": 1, "type": "customer"}, "channel": {"id": 761536},
                           "_raw": {"chat": chat, "uuid": f"spool-{chat}-{i}"}}]}
        ).encode()
        for i in range(count)
    ]  # fmt: skip


def test_raw_records_spread_by_chat_and_keep_each_chats_order(ingest, broker):
    chats = [70000 + n for n in range(24)]
    deliveries = {chat: _chat_messages(chat, 3) for chat in chats}
    for i in range(3):  # interleaved: chat after chat, delivery after delivery, one hook
        for chat in chats:
            assert _post(ingest, "live", deliveries[chat][i]).status_code == 200

    raw = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}raw", expect=len(chats) * 3))
    messages = asyncio.run(read_topic(broker.bootstrap, f"{ingest.prefix}messages", expect=len(chats) * 3))
    assert len(raw) == len(chats) * 3
    assert {r["_key"] for r in raw} == {str(chat) for chat in chats}
    assert len({r["_partition"] for r in raw}) > 1, "one hook's deliveries spread over partitions"
    message_partition = {m["chat_id"]: m["_partition"] for m in messages}
    for chat in chats:
        own = sorted((r for r in raw if r["_key"] == str(chat)), key=lambda r: r["_offset"])
        assert {r["_partition"] for r in own} == {message_partition[str(chat)]}  # with its messages
        assert [r["body"]["messages"][0]["_raw"]["uuid"] for r in own] == [
            f"spool-{chat}-{i}" for i in range(3)
        ]


def test_spool_takes_over_while_the_broker_is_down(engine, unique, tmp_path):
    port = free_port()
    broker = own_broker(engine, port, tmp_path / "broker").start()
    ingest = IngestProcess(_env(broker, f"s{unique}.", tmp_path), tmp_path / "ingest.log").start()
    try:
        ingest.wait_ready()
        bodies = _chat_messages(7, 12)
        assert _post(ingest, "docs", bodies[0]).status_code == 200
        broker.stop()
        statuses = [_post(ingest, "docs", body).status_code for body in bodies[1:]]
        assert set(statuses) == {202}
        readiness = httpx.get(f"{ingest.url}/readyz")
        assert (readiness.status_code, readiness.json()["status"]) == (503, "degraded")
        assert "messagehooks_spool_depth" in httpx.get(f"{ingest.url}/metrics").text
        # The broker back on the same port: Tansu empty (the topics are created again), Kafka
        # with its log (the first message is still there); the spool is forwarded.
        broker = own_broker(engine, port, tmp_path / "broker").start()
        ingest.wait_ready()
        kept = ["spool-7-0"] if durable(broker) else []
        records = asyncio.run(
            read_topic(broker.bootstrap, f"s{unique}.messages", expect=11 + len(kept), distinct="message_id")
        )
        # The request in flight when the broker died may also be delivered by the producer's own
        # retry (at-least-once; the id makes it one message downstream). Order is kept.
        assert _first_occurrences(records) == [*kept, *(f"spool-7-{i}" for i in range(1, 12))]
    finally:
        ingest.stop()
        broker.stop()


def test_kill9_after_a_2xx_loses_nothing(engine, unique, tmp_path):
    port = free_port()
    broker = own_broker(engine, port, tmp_path / "broker").start()
    env = _env(broker, f"k{unique}.", tmp_path)
    # The first produce waits for metadata (and, on Kafka, the idempotent producer's id): on a
    # loaded machine that outlasted 1.5 s once and the POST was spooled (202), not acked.
    ingest = IngestProcess({**env, "MESSAGEHOOKS_PRODUCE_TIMEOUT": "15"}, tmp_path / "ingest.log").start()
    try:
        ingest.wait_ready()
        bodies = _chat_messages(9, 4)
        # Acked by Kafka: the record is there even though the ingest dies at once.
        assert _post(ingest, "docs", bodies[0]).status_code == 200
        ingest.kill9()
        acked = asyncio.run(read_topic(broker.bootstrap, f"k{unique}.messages", expect=1))
        assert [r["message_id"] for r in acked] == ["spool-9-0"]
        # Spooled while the broker is down, then kill -9: the spool on disk brings it back.
        ingest = IngestProcess(env, tmp_path / "ingest.log").start()
        ingest.wait_ready()
        broker.stop()
        assert [_post(ingest, "docs", b).status_code for b in bodies[1:]] == [202, 202, 202]
        ingest.kill9()
        broker = own_broker(engine, port, tmp_path / "broker").start()
        ingest = IngestProcess(env, tmp_path / "ingest.log").start()
        ingest.wait_ready()
        kept = ["spool-9-0"] if durable(broker) else []  # Kafka's log survives its restart
        records = asyncio.run(
            read_topic(broker.bootstrap, f"k{unique}.messages", expect=3 + len(kept), distinct="message_id")
        )
        assert _first_occurrences(records) == [*kept, "spool-9-1", "spool-9-2", "spool-9-3"]
    finally:
        ingest.stop()
        broker.stop()


def _first_occurrences(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["message_id"] for r in records))


def test_tail_pretty_prints_a_chats_records(ingest, broker):
    assert _post(ingest, "docs", BUTTON_BODY).status_code == 200
    env = {**os.environ, **broker_env(broker), "MESSAGEHOOKS_TOPIC_PREFIX": ingest.prefix}
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    command = [
        sys.executable,
        "-m",
        "messagehooks",
        "tail",
        "messages",
        "--from-beginning",
        "--chat",
        "65363911",
    ]
    result = subprocess.run(
        [*command, "--max", "1", "--timeout", "20"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# {ingest.prefix}messages[")
    assert '"chat_id": "65363911"' in result.stdout
    assert '  "body": "hi!"' in result.stdout  # indented JSON
    other = subprocess.run(
        [*command[:-1], "1", "--timeout", "3"], env=env, capture_output=True, text=True, timeout=60
    )
    assert (other.returncode, other.stdout) == (0, "")  # no record of chat 1
