"""Personal data through the real pipeline: none in any table, none in the masked topics.

Real ingest, worker and sink on the session's Tansu broker. A chat whose every field a customer
controls holds personal data in some surface form, an invalid message with customer fields and a
body that is not UTF-8 are posted; the `messages` topic keeps them (it is the raw one), the
tables and the `turn-pairs`/`conversations` topics must not — unless the operator opted out with
MESSAGEHOOKS_MASK_TOPICS=false, and then the topics carry them and the tables still do not.
"""

import asyncio
import time
from typing import Any

import httpx
import pytest

from dataset import store
from messagehooks.settings import load_settings
from tests.conftest import broker_env
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess, pipeline_env
from tests.pii_leaks import leaks, strings_of
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

SECRETS = [
    (["qlopez", "qjohn", "qdoe", "qanab", "qjose", "quintanilla", "qlatin"], ""),
    ([], "442079460959"),
    ([], "34600112233"),
    ([], "4111111111111111"),
    ([], "12345698765432"),
]
"""Words of the e-mails and the customer's name, and digits of the phones, card and IBAN below."""


def _chat(ts: float) -> list[dict[str, Any]]:
    def message(**fields: Any) -> dict[str, Any]:
        item = landbot_message(chat="qjose.perez@correo.es", **fields)
        item["customer"].update({"name": "Quintanilla", "email": "qlopez@example.es"})
        return item

    return [
        message(
            ts=ts,
            type="dialog",
            sender_type="bot",
            body="Hola, ¿cómo te contacto?",
            options=["Mail qlopez@example.es", "Llamar +44/20/7946/0959"],
            uuid="d-1",
        ),
        message(
            ts=ts + 0.2,
            type="button",
            body="qjohn dot qdoe at gmail dot com",
            payload="https://x.example/c?e=qanab%40correo.es",
            uuid="qanab\u200b@correo.es",
        ),
        message(ts=ts + 0.4, type="text", sender_type="bot", body="¿Y para pagar?", uuid="d-3"),
        message(
            ts=ts + 0.6,
            type="text",
            body="tarjeta 4111.1111.1111.1111, IBAN GB82 WEST 1234 5698 7654 32, "
            "tel +34\u00a0600\u00a0112\u00a0233",
            uuid="d-4",
        ),
    ]


@pytest.mark.parametrize("mask_topics", [True, False], ids=["masked-topics", "original-topics"])
def test_no_personal_data_reaches_a_table_or_a_masked_topic(broker, unique, tmp_path, mask_topics):
    env = pipeline_env(
        broker_env(broker), f"pii{unique}", tmp_path / "data", gap=2, lateness=0.5, partitions=2
    )
    env["MESSAGEHOOKS_MASK_TOPICS"] = str(mask_topics).lower()
    settings = load_settings(env)
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    ingest.wait_ready()  # it creates the topics
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    # The sink starts once the worker has emitted: a worker that finds the messages in the table
    # first resumes their conversation from its (masked) rows instead (docs/dataset.md).
    sink = SinkProcess(env, tmp_path / "sink.log")
    try:
        invalid = {"timestamp": time.time(), "customer": {"name": "Quintanilla", "email": "qlatin@x.es"}}
        with httpx.Client(base_url=ingest.url, timeout=10) as client:
            for item in _chat(time.time()):
                assert client.post("/hooks/default", json=landbot_body(item)).status_code == 200
            assert client.post("/hooks/default", json={"messages": [invalid]}).status_code == 422
            latin = '{"messages": [{"data": {"body": "escr\xedbeme: qlatin@correo.es"}}]}'.encode("latin-1")
            assert client.post("/hooks/default", content=latin).status_code == 400
        raw = asyncio.run(read_topic(settings.bootstrap, settings.topics.messages, expect=4))
        assert leaks(strings_of(raw), SECRETS), "the raw topic keeps what was sent"

        conversations = asyncio.run(
            read_topic(settings.bootstrap, settings.topics.conversations, expect=1, timeout=60)
        )
        pairs = asyncio.run(read_topic(settings.bootstrap, settings.topics.turn_pairs, expect=3, timeout=30))
        assert len(conversations) == 1
        assert len({p["pair_id"] for p in pairs}) == 3
        sink.start()
        rows = _wait_rows(settings, {"messages": 4, "turn_pairs": 3, "conversations": 1, "dead_letters": 2})
        assert not leaks(strings_of(rows), SECRETS)
        topic_leaks = leaks(strings_of(pairs + conversations), SECRETS)
        if mask_topics:
            assert not topic_leaks
        else:
            assert topic_leaks, "with MESSAGEHOOKS_MASK_TOPICS=false the topics carry the originals"
    finally:
        worker.kill9()
        sink.kill9()
        ingest.stop()


def _wait_rows(settings: Any, counts: dict[str, int], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every row of the tables once each holds `counts[table]` rows (or the timeout passed)."""
    tables: dict[str, list[dict[str, Any]]] = {}

    def enough() -> bool:
        tables.update(
            (table, store.open_table(settings.dataset_root, table).to_pyarrow_table().to_pylist())
            if store.exists(settings.dataset_root, table)
            else (table, [])
            for table in counts
        )
        return all(len(tables[t]) >= n for t, n in counts.items())

    eventually(enough, timeout=timeout, interval=0.3)
    assert {t: len(rows) for t, rows in tables.items()} == counts
    return [row for rows in tables.values() for row in rows]
