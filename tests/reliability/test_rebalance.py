"""Workers joining and leaving while the idle timer closes conversations all the time.

A short conversation gap makes every chat go idle between its bursts, so the idle sweep is
forever flushing chats and awaiting Kafka's acks; each join or leave of a second worker takes
partitions (and their chats) away in the middle of that. The first worker must survive every
rebalance, and the tables must equal `features.batch`.
"""

import json
import signal
import threading
import time

import httpx
import pytest

from tests.conftest import broker_env
from tests.factories import landbot_body, landbot_message
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.reliability.test_resume import _assert_equal_to_batch, _compare_with_batch, _rows, _wait_for

pytestmark = pytest.mark.integration

GAP = 2.0
BURST_SPACING = 0.3  # event-time seconds between a burst's messages: far below the gap
GROUPS = 3  # each chat talks every GROUPS rounds, ROUND seconds apart: far above the gap
ROUND = 2.0
JOINED = "resumed open conversations from the messages table"
"""A worker's log line once it has partitions (and rebuilt their open chats) after a rebalance."""


def _bursts(url: str, chats: int, rounds: int, ids: set[str], stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for round_ in range(rounds):
            started = time.monotonic()
            for chat in range(round_ % GROUPS, chats, GROUPS):
                now = time.time()
                for i, sender in enumerate(("bot", "customer", "bot")):
                    uuid = f"r{chat}-{round_}-{i}"
                    message = landbot_message(
                        chat=800_000 + chat, sender_type=sender, ts=now + i * BURST_SPACING, uuid=uuid
                    )
                    if client.post("/hooks/default", json=landbot_body(message)).status_code == 200:
                        ids.add(uuid)
            if stop.wait(max(0.0, ROUND - (time.monotonic() - started))):
                return


def test_the_first_worker_survives_workers_joining_and_leaving_during_idle_sweeps(broker, unique, tmp_path):
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"rb{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "6",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "data"),
        "MESSAGEHOOKS_WORKER_ID": f"w{unique}",
        "MESSAGEHOOKS_SINK_GROUP": f"s{unique}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(GAP),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "0.5",
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
    }
    root = str(tmp_path / "data" / "datasets")
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    first = WorkerProcess(env, tmp_path / "worker-a.log").start()
    processes = [ingest, first, SinkProcess(env, tmp_path / "sink.log").start()]
    ids: set[str] = set()
    stop = threading.Event()
    try:
        ingest.wait_ready()
        # Bursts until the joins and leaves are over (stopped below; 100 rounds is only a bound).
        traffic = threading.Thread(target=_bursts, args=(ingest.url, 60, 100, ids, stop), daemon=True)
        traffic.start()
        _wait_for(lambda: _rows(root, "conversations", ["conversation_id"]) != [], 60, "idle closes")
        rebalances = 0
        for name, leave in (("b", signal.SIGTERM), ("c", signal.SIGKILL), ("d", signal.SIGTERM)):
            joining = WorkerProcess(env, tmp_path / f"worker-{name}.log").start()
            processes.append(joining)
            _wait_for(lambda w=joining: JOINED in w.logs(), 90, f"worker {name} to get partitions")
            time.sleep(2)  # sweeping its own partitions (every GAP / 4)
            joining.process.send_signal(leave)
            joining.process.wait(20)
            rebalances += 2
            time.sleep(3)  # the first worker takes the partitions back (a SIGKILL: after 2 s)
            assert first.alive(), first.logs()[-3000:]
        assert traffic.is_alive(), "the bursts ended before the last leave: raise their rounds"
        stop.wait(2 * ROUND)  # two more rounds on the first worker alone
        stop.set()
        traffic.join(30)
        assert not traffic.is_alive()
        figures = _compare_with_batch(
            root, tmp_path, f"rebalances-{env['MESSAGEHOOKS_BROKER_ENGINE']}", ids, gap=GAP
        )
        assert first.alive(), first.logs()[-3000:]
        assert "KeyError" not in first.logs()
    finally:
        stop.set()
        for process in processes:
            process.kill9()
    (tmp_path / "rebalances.json").write_text(json.dumps({"rebalances": rebalances}))
    _assert_equal_to_batch(figures)
