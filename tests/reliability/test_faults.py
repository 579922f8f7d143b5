"""Faults during live traffic: nothing lost, nothing duplicated, the stream equal to the batch.

A Landbot-like client (the simulator: one message per POST, retries of a non-2xx or a timeout
after a few seconds) posts while a process is killed with SIGKILL or the broker goes away. After
each fault: every message that got a 2xx is exactly once in `messages`, and `turn_pairs` and
`conversations` hold exactly the ids `features.batch` builds from those messages. Figures go to
a JSON file per test (RELIABILITY_FIGURES, default the test's tmp dir) for docs/RELIABILITY.md.
"""

import asyncio
import dataclasses
import io
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from dataset import store
from devtools.kafka_broker import KafkaBroker
from devtools.simulate import SimulationOptions, SimulationSummary, simulate
from devtools.tansu import EmbeddedBroker, free_port
from features.batch import build_dataset
from messagehooks.schema import Message
from messagehooks.settings import Settings, load_settings
from tests.conftest import broker_env
from tests.integration.kafka_read import read_topic
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

GAP = 10.0
"""Above what a client retry adds to a message's arrival while the ingest restarts (a few s)."""
SHORT_GAP = 5.0
"""Where no message arrives late (the worker faults): a restarted worker counts idleness from
its assignment and closes nothing while a backlog waits, so a restart may outlast the gap."""
AFTER_FAULTS = 6.0
"""Seconds of traffic after the last fault: the restarted or remaining processes take live traffic."""
TRAFFIC = SimulationOptions(  # ends AFTER_FAULTS after the last fault (at most 120 s)
    chats=600,
    rate=40,
    duration=120,
    seed=11,
    time_scale=0.02,
    returning=0.0,
    retry_scale=0.1,  # Landbot's 5/10/15/20/25 s gaps, 10x shorter
    timeout=3.0,
)


@dataclasses.dataclass
class Pipeline:
    """Real processes on one broker; `start` adds one, `kill9` ends one like a crash."""

    env: dict[str, str]
    tmp: Path
    settings: Settings
    processes: list = dataclasses.field(default_factory=list)

    @property
    def gap(self) -> float:
        return self.settings.conversation_gap

    @property
    def engine(self) -> str:
        return self.env["MESSAGEHOOKS_BROKER_ENGINE"]

    def start(self, kind: type, name: str, **env: str):
        process = kind({**self.env, **env}, self.tmp / f"{name}.log").start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.kill9()


def _pipeline(broker: EmbeddedBroker | KafkaBroker, tmp: Path, name: str, gap: float = GAP) -> Pipeline:
    unique = os.urandom(4).hex()
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"{name}{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_DATA_DIR": str(tmp / "data"),
        "MESSAGEHOOKS_WORKER_ID": f"w{unique}",
        "MESSAGEHOOKS_SINK_GROUP": f"s{unique}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(gap),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "1",
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
        "MESSAGEHOOKS_PORT": str(free_port()),
        "MESSAGEHOOKS_PRODUCE_TIMEOUT": "2",
    }
    settings = load_settings({**env, "MESSAGEHOOKS_KAFKA_BOOTSTRAP": broker.bootstrap})
    return Pipeline(env, tmp, settings)


class Traffic:
    """The simulator in a thread; `delivered` holds the ids of messages that got a 2xx."""

    def __init__(self, url: str, options: SimulationOptions = TRAFFIC) -> None:
        self.delivered: dict[str, int] = {}  # message id -> the 2xx status it got
        self.summary: SimulationSummary | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, options), daemon=True)
        self._thread.start()

    def _run(self, url: str, options: SimulationOptions) -> None:
        self.summary = asyncio.run(
            simulate(options, url, out=io.StringIO(), delivered=self.delivered, stop=self._stop)
        )

    def alive(self) -> bool:
        return self._thread.is_alive()

    def end_after_faults(self, timeout: float = 120) -> SimulationSummary:
        """Go on for AFTER_FAULTS s, then end the traffic (the retries it owes included)."""
        assert self.alive(), "the traffic ended before the last fault was over: raise its duration"
        time.sleep(AFTER_FAULTS)  # the point: live traffic for that long after the faults
        self._stop.set()
        self._thread.join(timeout)
        assert self.summary is not None, "the traffic did not finish"
        return self.summary


def _rows(settings: Settings, table: str, columns: list[str]) -> list[dict]:
    if not store.exists(settings.dataset_root, table):
        return []
    return store.open_table(settings.dataset_root, table).to_pyarrow_table(columns=columns).to_pylist()


def _ids(pipeline: Pipeline) -> list[str]:
    return [r["message_id"] for r in _rows(pipeline.settings, "messages", ["message_id"])]


def _wait_for(predicate, timeout: float, what: str) -> None:
    if not eventually(predicate, timeout=timeout, interval=0.5):
        pytest.fail(f"timed out waiting for {what}")


def _verify(
    pipeline: Pipeline, traffic: Traffic, summary: SimulationSummary, fault: str, faults: int
) -> dict:
    """Every 2xx message exactly once; pairs and conversations = the batch oracle; the figures."""
    settings = pipeline.settings
    delivered = set(traffic.delivered)
    # By id, not by count: messages the client got no answer for may be in the table too. One
    # still missing after the wait is counted as lost below.
    eventually(lambda: delivered <= set(_ids(pipeline)), timeout=90, interval=0.5)
    # Every id the sink wrote is on the topic (posts count retries, which may never have reached it).
    written = set(_ids(pipeline))
    records = asyncio.run(
        read_topic(
            settings.bootstrap,
            settings.topics.messages,
            expect=len(written),
            timeout=30,
            distinct="message_id",
        )
    )
    by_id = {
        r["message_id"]: msgspec.convert(
            {k: v for k, v in r.items() if not k.startswith("_") and k != "raw"}, Message
        )
        for r in records
    }
    messages = _rows(settings, "messages", ["message_id", "late"])
    late = {r["message_id"] for r in messages if r["late"]}
    pairs, conversations = build_dataset(
        [m for i, m in by_id.items() if i not in late], conversation_gap=pipeline.gap, context_turns=3
    )
    expected_pairs = {p.pair_id for p in pairs}
    expected_conversations = {c.conversation_id for c in conversations}
    _wait_for(
        lambda: len(_rows(settings, "conversations", ["conversation_id"])) >= len(expected_conversations),
        pipeline.gap + 60,
        "conversations closed by the idle timer",
    )
    time.sleep(1.5)  # a late duplicate commit would show now
    message_ids = Counter(r["message_id"] for r in _rows(settings, "messages", ["message_id"]))
    pair_ids = Counter(r["pair_id"] for r in _rows(settings, "turn_pairs", ["pair_id"]))
    conversation_ids = Counter(
        r["conversation_id"] for r in _rows(settings, "conversations", ["conversation_id"])
    )
    figures = {
        "fault": fault,
        "engine": pipeline.engine,
        "faults_injected": faults,
        "messages_delivered": len(delivered),
        "posts": summary.posts,
        "retries": summary.retries,
        "status_5xx": sum(n for code, n in summary.statuses.items() if code >= 500),
        "failed_deliveries": summary.failed,
        "lost": len(delivered - set(message_ids)),
        "duplicated_messages": sum(n - 1 for n in message_ids.values()),
        "duplicated_pairs": sum(n - 1 for n in pair_ids.values()),
        "pairs_missing_vs_batch": len(expected_pairs - set(pair_ids)),
        "pairs_extra_vs_batch": len(set(pair_ids) - expected_pairs),
        "conversations_vs_batch_diff": len(expected_conversations ^ set(conversation_ids)),
    }
    out = Path(os.environ.get("RELIABILITY_FIGURES", pipeline.tmp))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"faults-{fault}-{pipeline.engine}.json").write_text(json.dumps(figures, indent=2))
    assert summary.failed == 0, figures
    assert figures["lost"] == 0, figures
    assert set(message_ids) - delivered <= set(by_id), figures  # nothing the topic did not carry
    assert figures["duplicated_messages"] == figures["duplicated_pairs"] == 0, figures
    assert set(pair_ids) == expected_pairs, figures
    assert set(conversation_ids) == expected_conversations, figures
    assert max(conversation_ids.values(), default=1) == 1, figures
    return figures


@pytest.fixture
def pipeline(broker, tmp_path, request):
    gap = getattr(request, "param", GAP)
    pipeline = _pipeline(broker, tmp_path, request.node.name[5:13].replace("_", ""), gap)
    yield pipeline
    pipeline.stop_all()


def _kill_when_flowing(pipeline: Pipeline, traffic: Traffic, table: str, grown_by: int) -> None:
    start = len(_rows(pipeline.settings, table, [store.spec(table).key]))
    _wait_for(
        lambda: len(_rows(pipeline.settings, table, [store.spec(table).key])) >= start + grown_by, 60, table
    )
    assert traffic.alive(), "the traffic ended before the fault: post more"


def test_kill_9_of_the_ingest_during_traffic(pipeline):
    ingest = pipeline.start(IngestProcess, "ingest-1")
    ingest.wait_ready()
    pipeline.start(WorkerProcess, "worker")
    pipeline.start(SinkProcess, "sink")
    traffic = Traffic(f"{ingest.url}/hooks/default")
    _kill_when_flowing(pipeline, traffic, "messages", 100)
    ingest.kill9()  # requests in flight get no answer: the client retries them
    time.sleep(1.0)  # the point: the ingest stays down for a second
    pipeline.start(IngestProcess, "ingest-2")
    _verify(pipeline, traffic, traffic.end_after_faults(), "kill-ingest", 1)


@pytest.mark.parametrize("pipeline", [SHORT_GAP], indirect=True, ids=["short-gap"])
def test_kill_9_of_the_worker_twice_during_traffic(pipeline):
    ingest = pipeline.start(IngestProcess, "ingest")
    ingest.wait_ready()
    worker = pipeline.start(WorkerProcess, "worker-1")
    pipeline.start(SinkProcess, "sink")
    traffic = Traffic(f"{ingest.url}/hooks/default")
    for round_ in (2, 3):
        _kill_when_flowing(pipeline, traffic, "turn_pairs", 20)
        worker.kill9()
        worker = pipeline.start(WorkerProcess, f"worker-{round_}")
    _verify(pipeline, traffic, traffic.end_after_faults(), "kill-worker-twice", 2)


@pytest.mark.parametrize("pipeline", [SHORT_GAP], indirect=True, ids=["short-gap"])
def test_two_workers_one_killed(pipeline):
    ingest = pipeline.start(IngestProcess, "ingest")
    ingest.wait_ready()
    pipeline.start(WorkerProcess, "worker-a")
    doomed = pipeline.start(WorkerProcess, "worker-b")
    pipeline.start(SinkProcess, "sink")
    traffic = Traffic(f"{ingest.url}/hooks/default")
    _kill_when_flowing(pipeline, traffic, "turn_pairs", 30)
    doomed.kill9()  # worker-a takes its partitions after the session timeout
    _verify(pipeline, traffic, traffic.end_after_faults(), "two-workers-one-killed", 1)


def test_broker_outage_spools_and_a_fresh_broker_gets_everything(tmp_path):
    """A fresh in-memory broker knows nothing: the guarantee is what the spool and Delta hold.

    Tansu only: the test is about the in-memory engine's outage, a broker that comes back empty.
    Apache Kafka comes back with its log; its outage under live traffic (the spool forwarded to
    the restarted broker, every acknowledged message exactly once, the worker not restarted) is
    tests/engines/test_kafka_durability.py.

    What the sink committed before the broker died stays in Delta; what the ingest accepted while
    it was away (202) is fsynced in the spool and forwarded to the fresh broker. The worker and
    the sink are restarted with new groups (their offsets and the worker's changelog died with
    the broker). Then all of those are exactly once in `messages`. Messages the dead broker had
    acknowledged (200) but the sink had not committed yet died with it: counted, not asserted —
    a broker with persistent storage keeps them (and topics, offsets, changelog: nothing to
    restart, pairs equal the batch), which is the case the other fault tests cover.
    """
    port = free_port()
    brokers = [EmbeddedBroker(port).__enter__()]
    pipeline = _pipeline(brokers[0], tmp_path, "outage")
    try:
        ingest = pipeline.start(IngestProcess, "ingest")
        ingest.wait_ready()
        worker = pipeline.start(WorkerProcess, "worker-1")
        sink = pipeline.start(SinkProcess, "sink-1")
        traffic = Traffic(f"{ingest.url}/hooks/default")
        _kill_when_flowing(pipeline, traffic, "messages", 100)
        committed_before = set(_ids(pipeline))
        brokers.pop().__exit__(None, None, None)  # the broker is gone, with everything it held
        worker.kill9()
        sink.kill9()
        time.sleep(6)  # the ingest answers 202 and spools meanwhile (after 2 s of produce timeouts)
        brokers.append(EmbeddedBroker(port).__enter__())
        unique = os.urandom(3).hex()
        restarted = {"MESSAGEHOOKS_WORKER_ID": f"w2{unique}", "MESSAGEHOOKS_SINK_GROUP": f"s2{unique}"}
        pipeline.start(WorkerProcess, "worker-2", **restarted)
        pipeline.start(SinkProcess, "sink-2", **restarted)
        summary = traffic.end_after_faults()
        spooled = {i for i, status in traffic.delivered.items() if status == 202}
        acked = {i for i, status in traffic.delivered.items() if status == 200}
        assert spooled, "the spool never took over"
        _wait_for(
            lambda: set(_ids(pipeline)) >= spooled | committed_before,
            90,
            "the spooled messages in the dataset",
        )
        time.sleep(2)  # the point: a late duplicate commit would show now
        ids = Counter(_ids(pipeline))
        figures = {
            "fault": "broker-outage-fresh-broker",
            "faults_injected": 1,
            "messages_delivered": len(traffic.delivered),
            "posts": summary.posts,
            "answered_202": len(spooled),
            "status_5xx": sum(n for code, n in summary.statuses.items() if code >= 500),
            "lost": len((spooled | committed_before) - set(ids)),
            "acked_by_the_dead_broker_not_yet_in_delta": len(acked - set(ids)),
            "duplicated_messages": sum(n - 1 for n in ids.values()),
            "duplicated_pairs": sum(
                n - 1
                for n in Counter(
                    r["pair_id"] for r in _rows(pipeline.settings, "turn_pairs", ["pair_id"])
                ).values()
            ),
        }
        out = Path(os.environ.get("RELIABILITY_FIGURES", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        (out / "faults-broker-outage.json").write_text(json.dumps(figures, indent=2))
        assert figures["lost"] == 0, figures
        assert figures["duplicated_messages"] == 0, figures
        assert figures["duplicated_pairs"] == 0, figures
        assert figures["status_5xx"] == 0, figures
    finally:
        pipeline.stop_all()
        for running in brokers:
            running.__exit__(None, None, None)
