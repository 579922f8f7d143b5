"""A full disk under `messagehooks up`: readiness says so, errors stay JSON, nothing is lost.

The data dir is a small tmpfs (the tests run as root), filled to the last byte by a filler
file while traffic goes on, then freed. Phase 1: the sink's Delta commits fail while the
broker takes records - /readyz must answer 503 naming the sink. Phase 2: the broker stalls
too (SIGSTOP) - the ingest must spool or, when the spool's disk refuses, answer a JSON 503;
the sink must not crash while it can neither commit nor rewind. After the filler is removed
and the broker resumes, every message answered 2xx is in `messages` exactly once.

Each test with a broker runs on both engines. The disk that fills is the spool's and the
dataset's: Apache Kafka's log is kept off it (Tansu keeps its storage in memory), so a
broker whose own disk is full is not what these tests cover.
"""

import errno
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.tansu import free_port
from ingest.spool import Spool
from messagehooks.kafka import ProducerRecord
from tests.conftest import kafka_engine
from tests.integration.engines import own_broker
from tests.integration.processes import IngestProcess, SinkProcess
from tests.reliability.up_process import UpProcess, bodies_in, body_of, post_messages

pytestmark = pytest.mark.integration

TMPFS_SIZE = "64m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs mounted for this test, unmounted after it."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    """Write a filler file until the disk refuses even 512 bytes more."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 20, 1 << 14, 512):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


@pytest.fixture(params=["tansu", "kafka"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each broker engine in turn (kafka skipped, or failed where CI requires it, without Java)."""
    if request.param == "kafka":
        kafka_engine()
    return str(request.param)


def _stall(pid: int, timeout: float = 10.0) -> None:
    """SIGSTOP `pid` and wait until every thread of it has stopped (a loaded JVM's do not at once:
    one answered a produce after the signal, and the ingest a 200, in a run under load 15)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = _thread_states(pid)
        if states and all(state in "tT" for state in states):
            return
        time.sleep(0.05)
    raise TimeoutError(f"process {pid} was not stopped after {timeout} s")


def _thread_states(pid: int) -> list[str]:
    """The scheduler state letter of each thread of `pid` (T: stopped), from /proc."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append(task.joinpath("stat").read_text().rsplit(")", 1)[1].split()[0])
        except FileNotFoundError:
            continue  # the thread ended meanwhile
    return states


def _post_all(
    up: UpProcess, ids: range, client: httpx.Client
) -> tuple[Counter[int], dict[int, int], list[dict]]:
    """One message per POST; statuses counted, each id's status, and the 5xx bodies (parsed)."""
    statuses: Counter[int] = Counter()
    by_id: dict[int, int] = {}
    errors: list[dict] = []
    for i in ids:
        got = up.post(range(i, i + 1), client, keep_errors=errors)
        statuses += got
        by_id[i] = next(iter(got))
    return statuses, by_id, errors


def test_a_full_disk_shows_in_readiness_and_loses_nothing(small_disk, tmp_path, engine):
    data = small_disk / "data"
    if engine == "kafka":  # the broker's log (`{data dir}/kafka`) on the big disk
        data.mkdir()
        (tmp_path / "kafka").mkdir()
        (data / "kafka").symlink_to(tmp_path / "kafka")
    up = UpProcess(
        tmp_path, data, MESSAGEHOOKS_PRODUCE_TIMEOUT="1", MESSAGEHOOKS_BROKER_ENGINE=engine
    ).start()
    broker_stopped = False
    filler: Path | None = None
    try:
        up.wait_ready(timeout=120)
        sink_pid = up.children()["sink"]
        with httpx.Client() as client:
            before, _, _ = _post_all(up, range(0, 200), client)
            up.wait_bodies({body_of(i) for i in range(200)}, timeout=60)

            filler = _fill(small_disk)
            during, _, _ = _post_all(up, range(200, 400), client)  # the broker takes them: 200
            try:
                not_ready = up.wait_readyz(503, timeout=40).json()
            except TimeoutError:
                not_ready = None

            broker = up.children()["broker"]
            _stall(broker)  # the broker stalls: produce times out, the ingest spools
            broker_stopped = True
            stalled, by_id, errors = _post_all(up, range(400, 460), client)
            time.sleep(10)  # the sink, failing, tries to rewind against the stalled broker
            sink_survived = up.children().get("sink") == sink_pid
            os.kill(broker, signal.SIGCONT)
            broker_stopped = False

            filler.unlink()
            filler = None
            try:
                up.wait_ready(timeout=120)
                recovered = True
            except (TimeoutError, RuntimeError):
                recovered = False
        acked = {body_of(i) for i in range(400)} | {body_of(i) for i, s in by_id.items() if s == 202}
        found = up.wait_bodies(acked, timeout=120 if recovered else 10)
        code = up.stop()
        found = up.bodies()
        figures = {
            "fault": "full disk under up (tmpfs), then the broker stalled too",
            "engine": engine,
            "answered_before": dict(before),
            "answered_disk_full": dict(during),
            "readyz_while_commits_fail": not_ready,
            "answered_disk_full_broker_stalled": dict(stalled),
            "error_bodies": errors[:2],
            "sink_survived": sink_survived,
            "ready_again": recovered,
            "acked_2xx": len(acked),
            "lost": len(acked - set(found)),
            "duplicated": sum(n - 1 for n in found.values()),
            "exit_code": code,
        }
        out = Path(os.environ.get("RELIABILITY_FIGURES", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        (out / f"disk-full-{engine}.json").write_text(json.dumps(figures, indent=2))
        assert before == {200: 200}, figures
        assert during == {200: 200}, figures
        assert not_ready is not None, figures
        assert not_ready["error"] == "sink_unhealthy", figures
        assert "Delta commits fail" in not_ready["detail"], figures
        assert set(stalled) <= {202, 503}, figures
        assert stalled[503] > 0, figures
        assert all(e.get("error") == "spool_unavailable" for e in errors), figures
        assert sink_survived, figures
        assert recovered, figures
        assert (figures["lost"], figures["duplicated"]) == (0, 0), figures
        assert code == 0, figures
    finally:
        if broker_stopped:
            os.kill(broker, signal.SIGCONT)
        if filler is not None:
            filler.unlink(missing_ok=True)
        up.stop()


def test_the_spool_takes_records_again_once_the_disk_has_room(small_disk):
    """A write refused by a full disk leaves no transaction open behind it."""
    spool = Spool(small_disk / "spool" / "spool.sqlite3")
    spool.append([ProducerRecord("t", b"k", b"before")])
    filler = _fill(small_disk)
    refused: list[str] = []
    for i in range(50):  # the WAL may still have room for a few records
        try:
            spool.append([ProducerRecord("t", b"k", b"x" * 8192 + str(i).encode())])
        except sqlite3.OperationalError as exc:
            refused.append(str(exc))
            break
    filler.unlink()
    spool.append([ProducerRecord("t", b"k", b"after")])
    values = [record.value for _, record in spool.peek(100)]
    spool.close()
    assert refused == ["database or disk is full"]
    assert values[0] == b"before"
    assert values[-1] == b"after"
    assert len(values) == spool.depth


def test_the_sink_survives_failed_commits_while_the_broker_is_down(small_disk, tmp_path, engine):
    """Commits fail (full disk) and the broker is gone: the rewind cannot reach it. The sink
    must keep running, and write what the next broker brings once the disk has room: on Tansu
    a fresh, empty broker (what the sink could not commit died with the old one); on Kafka the
    same broker again, so those records are written too."""
    port = free_port()
    broker = own_broker(engine, port, tmp_path / "kafka").start()
    unique = os.urandom(4).hex()
    env = {
        "MESSAGEHOOKS_BROKER_PORT": str(port),
        "MESSAGEHOOKS_BROKER_ENGINE": engine,
        "MESSAGEHOOKS_TOPIC_PREFIX": f"full{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "3",
        "MESSAGEHOOKS_SINK_GROUP": f"s{unique}",
        "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
        "MESSAGEHOOKS_PRODUCE_TIMEOUT": "1",
    }
    ingest = IngestProcess(
        {**env, "MESSAGEHOOKS_DATA_DIR": str(tmp_path / "ingest")}, tmp_path / "ingest.log"
    )
    sink = SinkProcess({**env, "MESSAGEHOOKS_DATA_DIR": str(small_disk / "data")}, tmp_path / "sink.log")
    root = str(small_disk / "data" / "datasets")
    filler: Path | None = None
    try:
        ingest.start().wait_ready()
        sink.start()
        with httpx.Client() as client:
            first = post_messages(ingest.url, range(0, 50), client)
            deadline = time.monotonic() + 60
            while len(bodies_in(root)) < 50 and time.monotonic() < deadline:
                time.sleep(0.3)
            filler = _fill(small_disk)
            post_messages(ingest.url, range(50, 100), client)  # the sink cannot commit these
            time.sleep(3)
            broker.stop()  # gone: the sink's rewind finds no broker
            time.sleep(8)
            alive_while_down = sink.alive()
            broker = own_broker(engine, port, tmp_path / "kafka").start()  # Tansu: empty, 50..99 died with it
            filler.unlink()
            filler = None
            last = post_messages(ingest.url, range(100, 150), client)
        kept = range(50, 100) if engine == "kafka" else range(0)  # the records of the full disk's time
        expected = {body_of(i) for i in (*range(50), *kept, *range(100, 150))}
        deadline = time.monotonic() + 90
        while not expected <= set(bodies_in(root)) and time.monotonic() < deadline and sink.alive():
            time.sleep(0.5)
        found = bodies_in(root)
        figures = {
            "fault": "sink commits failing (full tmpfs) while the broker is down",
            "engine": engine,
            "answered_first": dict(first),
            "answered_last": dict(last),
            "sink_alive_while_broker_down": alive_while_down,
            "sink_alive_at_end": sink.alive(),
            "missing": len(expected - set(found)),
            "duplicated": sum(n - 1 for n in found.values()),
            "failed_commit_logged": "Delta commit failed" in sink.logs(),
        }
        out = Path(os.environ.get("RELIABILITY_FIGURES", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        (out / f"disk-full-broker-down-sink-{engine}.json").write_text(json.dumps(figures, indent=2))
        assert figures["failed_commit_logged"], figures
        assert alive_while_down, figures
        assert figures["sink_alive_at_end"], figures
        assert (figures["missing"], figures["duplicated"]) == (0, 0), figures
    finally:
        if filler is not None:
            filler.unlink(missing_ok=True)
        sink.stop()
        ingest.stop()
        broker.stop()
