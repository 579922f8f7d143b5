"""The real ingest process starts on a spool file overwritten with garbage: it keeps it and serves."""

import asyncio
import json

import httpx
import pytest

from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess
from tests.integration.test_ingest_kafka import BUTTON_BODY, _env, _post

pytestmark = pytest.mark.integration


def test_ingest_moves_a_corrupt_spool_aside_and_serves(broker, unique, tmp_path):
    spool = tmp_path / "spool" / "spool.sqlite3"
    spool.parent.mkdir()
    garbage = b"\x00this spool was overwritten\xff" * 300
    spool.write_bytes(garbage)
    ingest = IngestProcess(_env(broker, f"cs{unique}.", tmp_path), tmp_path / "ingest.log").start()
    try:
        ingest.wait_ready()
        assert _post(ingest, "docs", BUTTON_BODY).status_code == 200
        records = asyncio.run(read_topic(broker.bootstrap, f"cs{unique}.messages", expect=1))
        assert len(records) == 1
        readiness = httpx.get(f"{ingest.url}/readyz", timeout=5)
        assert readiness.status_code == 200
    finally:
        ingest.stop()
    (moved,) = [
        p for p in spool.parent.glob("spool.sqlite3.corrupt-*") if not p.name.endswith(("-wal", "-shm"))
    ]
    assert moved.read_bytes() == garbage  # kept as it was, never dropped
    lines = [json.loads(line) for line in ingest.logs().splitlines() if line.startswith("{")]
    (error,) = [line for line in lines if line["level"] == "ERROR"]
    assert error["logger"] == "ingest.spool_recovery"
    assert str(spool) in error["msg"]
    assert str(moved) in error["msg"]
    assert ".recover" in error["msg"]
    assert "Traceback" not in ingest.logs()
