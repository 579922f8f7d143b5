"""`up` stopped in the middle of conversations, then `up` again on the same data dir.

The embedded broker keeps its topics (the worker's changelog included) in memory, so the second
`up` starts with no stream state; the worker rebuilds the chats still open from the `messages`
table (streams/resume.py). After the conversations close, `turn_pairs` and `conversations` must
equal `features.batch` over every message in the dataset: no pair lost, none different.
Figures go to a JSON file per test (RELIABILITY_FIGURES, default the test's tmp dir).
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from dataset import store
from dataset.rows import conversation_row, masker, pair_row
from devtools.tansu import free_port
from features.batch import build_dataset, messages_from_frame
from tests.conftest import broker_env, kafka_engine
from tests.factories import landbot_body, landbot_message
from tests.integration.processes import IngestProcess, SinkProcess, WorkerProcess
from tests.integration.traffic import conversation_traffic, deliveries
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

GAP = 10.0
"""Above every gap inside a chat's traffic (event time: at most 4 x 1.5 s) and above the few
seconds between a chat's last message and the stop (a longer wall-clock silence would close it
on the first `up`). The restart may take longer: a worker counts a chat's idleness from when it
got the chat's partition, and closes nothing while messages wait in Kafka."""


class Up:
    """`python -m messagehooks up` on a data dir, in its own process group."""

    def __init__(self, data_dir: Path, log: Path, port: int | None = None, engine: str = "tansu") -> None:
        self.port = port or free_port()
        env = {
            **os.environ,
            "MESSAGEHOOKS_BROKER_ENGINE": engine,
            "MESSAGEHOOKS_PORT": str(self.port),
            "MESSAGEHOOKS_BROKER_PORT": str(free_port()),
            "MESSAGEHOOKS_CONVERSATION_GAP": str(GAP),
            "MESSAGEHOOKS_ALLOWED_LATENESS": "1",
            "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
            "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",
            "MESSAGEHOOKS_SINK_METRICS_PORT": "0",
        }
        env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "messagehooks", "up", "--no-simulate", "--data-dir", str(data_dir)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
                start_new_session=True,
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        # 120 s for the kafka engine: a JVM start, or a previous one's stop.
        if not eventually(self._ready, timeout=120):
            pytest.fail("up did not become ready")

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def ctrl_c(self) -> None:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(60) == 0

    def kill9(self) -> None:
        self.process.kill()  # its children die with it (PR_SET_PDEATHSIG)
        self.process.wait(10)
        time.sleep(2)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _warm_up(up: Up, root: str, chat: int) -> None:
    """One short chat whose pair is in Delta: the worker of this `up` has joined and works."""
    now = time.time()
    messages = [
        landbot_message(chat=chat, sender_type=sender, ts=now + offset, uuid=f"warm-{chat}-{offset}")
        for offset, sender in ((0, "bot"), (1, "customer"), (2, "bot"), (4, "bot"))
    ]
    _post_all(up.url, [json.dumps(landbot_body(m)).encode() for m in messages])
    _wait_for(
        lambda: _rows(root, "turn_pairs", ["chat_id"]) != [],
        90,
        "the warm-up pair",
        lambda: up.log.read_text(errors="replace")[-4000:],
    )


def _post_all(url: str, bodies: list[bytes]) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for body in bodies:
            assert client.post("/hooks/default", content=body).status_code == 200


def _message_ids(root: str) -> set[str]:
    return {row["message_id"] for row in _rows(root, "messages", ["message_id"])}


def _rows(root: str, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    if not store.exists(root, table):
        return []
    return store.open_table(root, table).to_pyarrow_table(columns=columns).to_pylist()


def _wait_for(predicate, timeout: float, what: str, context=lambda: "") -> None:
    """Until `predicate()`; past `timeout` the test fails, naming `what` (and `context()`)."""
    if not eventually(predicate, timeout=timeout, interval=0.5):
        pytest.fail(f"timed out waiting for {what} {context()}".strip())


def _normal(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Rows by id, as JSON values (tuples and lists, dates and strings compare alike)."""
    return {row[key]: json.loads(json.dumps(row, default=str)) for row in rows}


def _compare_with_batch(
    root: str, tmp: Path, name: str, message_ids: set[str], gap: float = GAP
) -> dict[str, int]:
    """Wait for every message and every conversation, then diff the tables with the batch oracle."""
    # By id, not by count: the table holds the warm-up chat too. A message still missing after
    # the wait is counted as lost below.
    eventually(lambda: message_ids <= _message_ids(root), timeout=90, interval=0.5)
    frame = store.open_table(root, "messages").to_pandas()
    messages = messages_from_frame(frame[~frame["late"]])
    pairs, conversations = build_dataset(messages, conversation_gap=gap, context_turns=3)
    mask = masker(True)
    expected_pairs = _normal([pair_row(p, mask) for p in pairs], "pair_id")
    expected_conversations = _normal([conversation_row(c, mask) for c in conversations], "conversation_id")
    # Not a failure by itself: without the resume some never close, and the figures say which.
    eventually(
        lambda: len(_rows(root, "conversations", ["conversation_id"])) >= len(expected_conversations),
        timeout=gap + 60,
        interval=0.5,
    )
    time.sleep(2)  # a straggling commit would show now
    got_pairs = _normal(_rows(root, "turn_pairs"), "pair_id")
    got_conversations = _normal(_rows(root, "conversations"), "conversation_id")
    figures = {
        "messages_acknowledged": len(message_ids),
        "messages_lost": len(message_ids - set(frame["message_id"])),
        "messages_duplicated": sum(n - 1 for n in Counter(frame["message_id"]).values()),
        "pairs_expected": len(expected_pairs),
        "pairs_missing": len(expected_pairs.keys() - got_pairs.keys()),
        "pairs_extra": len(got_pairs.keys() - expected_pairs.keys()),
        "pairs_different": sum(
            got_pairs[i] != expected_pairs[i] for i in expected_pairs.keys() & got_pairs.keys()
        ),
        "conversations_expected": len(expected_conversations),
        "conversations_missing": len(expected_conversations.keys() - got_conversations.keys()),
        "conversations_extra": len(got_conversations.keys() - expected_conversations.keys()),
        "conversations_different": sum(
            got_conversations[i] != expected_conversations[i]
            for i in expected_conversations.keys() & got_conversations.keys()
        ),
    }
    out = Path(os.environ.get("RELIABILITY_FIGURES", tmp))
    out.mkdir(parents=True, exist_ok=True)
    (out / f"resume-{name}.json").write_text(json.dumps(figures, indent=2))
    return figures


def _traffic(chats: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Landbot messages of `chats` chats in event-time order, split in the middle of each chat.

    Messages 1.5 s or more apart (event time), more than the allowed lateness: pairs become final
    as their messages arrive, so the worker holds state and has emitted pairs at the stop.
    """
    first: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    by_chat: dict[Any, list[dict[str, Any]]] = {}
    for message in conversation_traffic(chats, seed=seed, spacing=1.5):
        by_chat.setdefault(message["_raw"]["chat"], []).append(message)
    for messages in by_chat.values():
        half = max(1, len(messages) // 2)
        first.extend(messages[:half])
        rest.extend(messages[half:])
    return sorted(first, key=lambda m: m["timestamp"]), sorted(rest, key=lambda m: m["timestamp"])


def _ids(bodies: list[bytes]) -> set[str]:
    # The ingest's message id is the Landbot uuid (docs/ingest.md); every message here has one.
    return {m["_raw"]["uuid"] for body in bodies for m in json.loads(body)["messages"]}


def _assert_equal_to_batch(figures: dict[str, int]) -> None:
    wrong = {k: v for k, v in figures.items() if not k.endswith(("_expected", "_acknowledged")) and v}
    assert not wrong, figures


def _engine(name: str) -> str:
    """`name`, once the kafka engine is known to run here (skips or fails like the `kafka` fixture)."""
    if name == "kafka":
        kafka_engine()
    return name


@pytest.mark.parametrize("engine", ["tansu", "kafka"])
@pytest.mark.parametrize("stop", ["ctrl_c", "kill9"])
def test_conversations_open_at_a_stop_continue_after_up_again(tmp_path, stop, engine):
    """Tansu: the worker's state is gone and rebuilt from `messages`. Kafka: its changelog is
    kept (the rebuild then finds nothing to change). Both must equal the batch."""
    _engine(engine)
    data_dir = tmp_path / "data"
    root = str(data_dir / "datasets")
    first, rest = _traffic(30, seed=21)
    first_bodies, rest_bodies = deliveries(first, seed=22), deliveries(rest, seed=23)
    up = Up(data_dir, tmp_path / "up-1.log", engine=engine)
    try:
        _warm_up(up, root, 1)
        _post_all(up.url, first_bodies)
        # Every message of the first half is in Delta before the stop (for kill -9 too: what the
        # sink had not committed would die with the in-memory broker, which is not this test).
        _wait_for(lambda: _ids(first_bodies) <= _message_ids(root), 60, "first half")
        # ... and the worker has state to lose: it has paired some of them.
        _wait_for(lambda: len(_rows(root, "turn_pairs", ["pair_id"])) > 1, 60, "pairs before the stop")
        getattr(up, stop)()
    finally:
        up.close()
    again = Up(data_dir, tmp_path / "up-2.log", engine=engine)
    try:
        _post_all(again.url, rest_bodies)
        figures = _compare_with_batch(root, tmp_path, f"{engine}-{stop}", _ids(first_bodies + rest_bodies))
    finally:
        again.close()
    _assert_equal_to_batch(figures)


@pytest.mark.parametrize("engine", ["tansu", "kafka"])
def test_ctrl_c_halfway_through_a_replay_then_up_again(tmp_path, engine):
    """`messagehooks replay` of recorded traffic goes on, retrying, while up restarts under it."""
    _engine(engine)
    data_dir = tmp_path / "data"
    root = str(data_dir / "datasets")
    first, rest = _traffic(120, seed=31)
    bodies = deliveries(sorted(first + rest, key=lambda m: m["timestamp"]), seed=32)
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes(b"\n".join(bodies) + b"\n")
    port = free_port()
    up = Up(data_dir, tmp_path / "up-1.log", port=port, engine=engine)
    _warm_up(up, root, 1)
    with (tmp_path / "replay.log").open("wb") as replay_log:
        replay = subprocess.Popen(
            [sys.executable, "-m", "messagehooks", "replay", str(capture), "--url", f"{up.url}/hooks/default",
             "--retries", "200", "--retry-delay", "0.25", "--timeout", "5", "--progress-every", "1000000"],
            stdout=replay_log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_for(lambda: len(_rows(root, "messages", ["message_id"])) >= len(bodies) // 4, 60, "a quarter")
        assert replay.poll() is None, "the replay ended before the stop: record more traffic"
        up.ctrl_c()
        up = Up(data_dir, tmp_path / "up-2.log", port=port, engine=engine)
        assert replay.wait(180) == 0, (tmp_path / "replay.log").read_text()[-2000:]
        figures = _compare_with_batch(root, tmp_path, f"replay-ctrl-c-{engine}", _ids(bodies))
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
        up.close()
    _assert_equal_to_batch(figures)


PAUSE_GAP = 4.0


def test_a_worker_paused_longer_than_the_gap_closes_nothing_whose_messages_wait_in_kafka(
    broker, unique, tmp_path
):
    """SIGSTOP the worker for gap + 3 s while every chat goes on talking, then SIGCONT.

    On waking up, the idle timer finds every chat idle for more than the gap on the wall clock;
    only the partitions' fresh end offsets tell it that their next messages are in Kafka.
    """
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"pause{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "data"),
        "MESSAGEHOOKS_WORKER_ID": f"w{unique}",
        "MESSAGEHOOKS_SINK_GROUP": f"s{unique}",
        "MESSAGEHOOKS_CONVERSATION_GAP": str(PAUSE_GAP),
        "MESSAGEHOOKS_ALLOWED_LATENESS": "1",
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
    }
    root = str(tmp_path / "data" / "datasets")
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    processes = [ingest, WorkerProcess(env, tmp_path / "worker.log").start()]
    processes.append(SinkProcess(env, tmp_path / "sink.log").start())
    worker = processes[1]
    ids: set[str] = set()
    try:
        ingest.wait_ready()
        chats, pause_at, after_waking = 20, 6, 4
        paused, woken_at = 0.0, None
        with httpx.Client(base_url=ingest.url, timeout=10) as client:
            # Rounds until `after_waking` rounds after the SIGCONT (100 is only a bound).
            for round_ in range(100):
                if woken_at is not None and round_ >= woken_at + after_waking:
                    break
                if round_ == pause_at:
                    # Only once pairs flow: the worker has joined and is caught up.
                    _wait_for(lambda: len(_rows(root, "turn_pairs", ["pair_id"])) > 0, 60, "first pairs")
                    worker.process.send_signal(signal.SIGSTOP)
                    paused = time.monotonic()
                if round_ > pause_at and time.monotonic() - paused > PAUSE_GAP + 3 and worker.alive():
                    worker.process.send_signal(signal.SIGCONT)
                    paused, woken_at = float("inf"), round_
                for chat in range(chats):
                    uuid = f"p{unique}-{chat}-{round_}"
                    role = "bot" if round_ % 2 == 0 else "customer"
                    message = landbot_message(
                        chat=700_000 + chat,
                        sender_type=role,
                        ts=time.time(),
                        uuid=uuid,
                        body=f"{role} {round_}",
                    )
                    assert client.post("/hooks/default", json=landbot_body(message)).status_code == 200
                    ids.add(uuid)
                time.sleep(0.8)
        assert paused == float("inf"), "the traffic ended before the worker was woken: post longer"
        figures = _compare_with_batch(
            root, tmp_path, f"sigstop-worker-{env['MESSAGEHOOKS_BROKER_ENGINE']}", ids, gap=PAUSE_GAP
        )
    finally:
        for process in processes:
            if process.alive():
                process.process.send_signal(signal.SIGCONT)
            process.kill9()
    _assert_equal_to_batch(figures)
