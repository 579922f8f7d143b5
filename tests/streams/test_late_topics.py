"""A worker started before its output topics exist: its state writes must not fail when they come.

The worker's producer caches the metadata of the topics that existed when it started. A send to a
topic created later makes aiokafka refresh only the topics asked for by name, which dropped the
chats table's changelog from that cache; every state write then crashed the agent (a TypeError
in Faust's `key_partition`), and the first state write of the idle timer crashed the worker.
Seen on Kafka with the ingest, the worker and the sink started together (the notebooks test);
`streams.patches.track_table_topic` keeps the changelog in the cache.
"""

import asyncio
import time

import httpx
import msgspec
import pytest

from devtools.tansu import free_port
from features.batch import build_dataset
from messagehooks.kafka import ensure_project_topics, ensure_topics, make_producer
from messagehooks.schema import Message, encode_message
from messagehooks.settings import Settings
from tests.conftest import broker_env
from tests.factories import message
from tests.integration.engines import own_settings
from tests.integration.kafka_read import read_topic
from tests.integration.processes import WorkerProcess
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

GAP = 3.0


def _chat(unique: str) -> list[Message]:
    """Bot and customer taking turns, a second apart (one conversation of four pairs)."""
    start = time.time() - 60
    return [
        message(
            chat=f"late{unique}",
            role="bot" if i % 2 == 0 else "customer",
            ts=start + i,
            body=f"turn {i}",
            message_id=f"{unique}-{i}",
        )
        for i in range(8)
    ]


async def _produce(settings: Settings, messages: list[Message]) -> None:
    producer = make_producer(settings.bootstrap)
    await producer.start()
    try:
        for m in messages:
            await producer.send_and_wait(settings.topics.messages, encode_message(m), key=m.chat_id.encode())
    finally:
        await producer.stop()


def _processed(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("messagehooks_worker_messages_total "):
            return float(line.split()[1])
    return 0.0


def test_state_written_after_an_output_topic_was_created_is_kept(broker, unique, tmp_path):
    settings = own_settings(broker, topic_prefix=f"lt{unique}.", partitions=1)
    asyncio.run(ensure_topics(settings.bootstrap, [settings.topics.messages], partitions=1))
    port = free_port()
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": settings.topic_prefix,
        "MESSAGEHOOKS_PARTITIONS": "1",
        "MESSAGEHOOKS_WORKER_ID": f"lt{unique}",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path),
        "MESSAGEHOOKS_WORKER_METRICS_PORT": str(port),
        "MESSAGEHOOKS_CONVERSATION_GAP": str(GAP),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "0.5",
    }
    chat = _chat(unique)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        asyncio.run(_produce(settings, chat[:1]))
        # The worker starts and joins its group first.
        eventually(lambda: _processed(port) >= 1, timeout=90, give_up=lambda: not worker.alive())
        assert _processed(port) == 1, worker.logs()[-3000:]
        asyncio.run(ensure_project_topics(settings))  # the output topics, new to the worker
        asyncio.run(_produce(settings, chat[1:]))
        pairs, conversations = build_dataset(chat, conversation_gap=GAP, context_turns=3)
        got_conversations = asyncio.run(
            read_topic(settings.bootstrap, settings.topics.conversations, expect=1, timeout=60)
        )
        got_pairs = asyncio.run(read_topic(settings.bootstrap, settings.topics.turn_pairs, expect=len(pairs)))
        survived = worker.alive()  # it closed the conversation and wrote that state too
    finally:
        worker.stop()
    assert survived, worker.logs()[-3000:]
    assert "Crashed" not in worker.logs()
    as_json = msgspec.json.decode(msgspec.json.encode([pairs, conversations]))
    strip = [{k: v for k, v in r.items() if not k.startswith("_")} for r in got_pairs]
    assert strip == as_json[0]
    assert [{k: v for k, v in r.items() if not k.startswith("_")} for r in got_conversations] == as_json[1]
