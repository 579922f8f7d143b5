"""The kafka engine: a real Apache Kafka (KRaft) JVM, started and stopped by the project's code."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.kafka_broker import KafkaBroker, min_heap, new_cluster_id
from devtools.tansu import free_port
from messagehooks.engines import resolve
from messagehooks.errors import BrokerUnavailable, ConfigError
from messagehooks.kafka import make_producer
from messagehooks.settings import Settings
from tests.conftest import kafka_engine
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.support.poll import eventually

pytestmark = pytest.mark.integration


def test_an_explicit_engine_is_taken_as_is_and_a_typo_is_a_clear_error():
    assert resolve(Settings(broker_engine="tansu")).name == "tansu"
    assert resolve(Settings(broker_engine="kafka")).name == "kafka"
    assert resolve(Settings(kafka_bootstrap="h:9092", broker_engine="tansu")).name == "kafka"
    with pytest.raises(ConfigError, match="MESSAGEHOOKS_BROKER_ENGINE must be one of auto, kafka, tansu"):
        resolve(Settings(broker_engine="kafak"))


def test_auto_falls_back_to_tansu_and_says_why_without_the_jars(tmp_path):
    engine = resolve(Settings(broker_engine="auto", kafka_libs=tmp_path))
    assert engine.name == "tansu"
    assert "jars" in engine.reason or "java" in engine.reason.lower()


def test_cluster_ids_are_kraft_ids():
    for _ in range(200):
        cluster = new_cluster_id()
        assert len(cluster) == 22
        assert not cluster.startswith("-")


def test_the_initial_heap_is_a_quarter_of_the_maximum():
    assert (min_heap("512m"), min_heap("1g"), min_heap("2G")) == ("128m", "1g", "1G")
    with pytest.raises(ConfigError, match="KAFKA_HEAP"):
        min_heap("lots")


def test_the_broker_command_without_jars_is_one_line_naming_make_venv(tmp_path):
    env = {**os.environ, "MESSAGEHOOKS_KAFKA_LIBS": str(tmp_path / "none")}
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "messagehooks",
            "broker",
            "--engine",
            "kafka",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "make venv" in done.stderr
    assert "Traceback" not in done.stderr


async def _produce(bootstrap: str, topic: str, count: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, json.dumps({"n": i}).encode(), key=str(i % 5).encode())
    finally:
        await producer.stop()


def _numbers(bootstrap: str, topic: str, expect: int) -> list[int]:
    records = asyncio.run(read_topic(bootstrap, topic, expect=expect, timeout=30, validate=False))
    return sorted(r["n"] for r in records)


@pytest.mark.parametrize("stop", ["sigterm", "kill-9"])
def test_acknowledged_records_and_the_cluster_survive_a_restart(tmp_path, stop):
    kafka_engine()
    broker = KafkaBroker(tmp_path / "kafka").start()
    try:
        first_cluster = broker.cluster_id
        asyncio.run(_produce(broker.bootstrap, "durable", 300))
        if stop == "kill-9":
            os.kill(broker.pid, signal.SIGKILL)
            broker._process.wait(10)
        broker.stop()
        broker.start()
        assert broker.cluster_id == first_cluster  # formatted once, kept
        assert _numbers(broker.bootstrap, "durable", 300) == list(range(300))
    finally:
        broker.stop()


def test_a_second_broker_on_the_same_storage_waits_then_names_the_first(tmp_path):
    kafka_engine()
    first = KafkaBroker(tmp_path / "kafka").start()
    try:
        with pytest.raises(BrokerUnavailable, match=f"another Apache Kafka runs on .*pid {first.pid}"):
            KafkaBroker(tmp_path / "kafka", wait_previous=2).start()
        assert _numbers_after_produce(first.bootstrap) == [0]  # the first one was left alone
    finally:
        first.stop()


def _numbers_after_produce(bootstrap: str) -> list[int]:
    asyncio.run(_produce(bootstrap, "left-alone", 1))
    return _numbers(bootstrap, "left-alone", 1)


def test_a_killed_parent_leaves_no_broker_jvm_behind(tmp_path):
    kafka_engine()
    port = free_port()
    env = {**os.environ}
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    parent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "messagehooks",
            "broker",
            "--engine",
            "kafka",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "kafka broker on" in _line_containing(parent, "broker on", timeout=90)
        jvm = _jvm_pids(tmp_path)
        assert len(jvm) == 1
        parent.kill()
        parent.wait(10)
        eventually(lambda: not _jvm_pids(tmp_path), timeout=30)
        assert _jvm_pids(tmp_path) == []
    finally:
        parent.stderr.close()
        for pid in _jvm_pids(tmp_path):
            os.kill(pid, signal.SIGKILL)


def test_tail_finds_the_partitions_of_a_topic_on_kafka(kafka, unique):
    # A consumer's own metadata lists only subscribed topics on Kafka: `tail` said the topic did
    # not exist (Tansu lists every topic, so this only showed on the real broker).
    asyncio.run(_produce(kafka.bootstrap, f"tail{unique}.messages", 3))
    env = {
        **os.environ,
        "MESSAGEHOOKS_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "MESSAGEHOOKS_TOPIC_PREFIX": f"tail{unique}.",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "messagehooks",
            "tail",
            "messages",
            "--from-beginning",
            "--max",
            "3",
            "--timeout",
            "20",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"# tail{unique}.messages[") == 3


def _line_containing(process: subprocess.Popen[str], text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if text in line or not line:
            return line
    return ""


def _jvm_pids(home: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"kafka.Kafka {home}"], capture_output=True, text=True).stdout
    return [int(pid) for pid in found.split()]


def _rows(data_dir: Path) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "messagehooks", "dataset", "--data-dir", str(data_dir), "stats"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows: int = json.loads(out)["tables"]["messages"]["rows"]
    return rows


def test_up_on_kafka_keeps_topics_and_offsets_across_a_ctrl_c(tmp_path):
    """`up --engine kafka`, traffic, Ctrl-C, `up` again: the second run re-reads nothing."""
    kafka_engine()
    data_dir = tmp_path / "data"
    port, broker_port = free_port(), free_port()
    env = {**os.environ, "MESSAGEHOOKS_WORKER_METRICS_PORT": "0", "MESSAGEHOOKS_SINK_METRICS_PORT": "0"}
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    command = [
        sys.executable,
        "-m",
        "messagehooks",
        "up",
        "--engine",
        "kafka",
        "--no-simulate",
        "--port",
        str(port),
        "--broker-port",
        str(broker_port),
        "--data-dir",
        str(data_dir),
    ]
    for run in range(2):
        log = tmp_path / f"up-{run}.log"
        with log.open("wb") as out:
            up = subprocess.Popen(
                command, env=env, stdout=subprocess.DEVNULL, stderr=out, start_new_session=True
            )
        try:
            _wait_ready(f"http://127.0.0.1:{port}/readyz", up, timeout=120)
            for i in range(50):
                message = landbot_message(chat=900 + i % 5, ts=time.time(), uuid=f"run{run}-{i}")
                response = httpx.post(f"http://127.0.0.1:{port}/hooks/default", json=landbot_body(message))
                assert response.status_code == 200
            expected = 50 * (run + 1)
            eventually(lambda: _rows(data_dir) >= expected, timeout=60, interval=0.5)  # noqa: B023 - called now
            assert _rows(data_dir) == 50 * (run + 1)
            up.send_signal(signal.SIGINT)
            assert up.wait(60) == 0
        finally:
            if up.poll() is None:
                up.send_signal(signal.SIGTERM)
                up.wait(60)
    second = (tmp_path / "up-1.log").read_text()
    assert "broker engine: kafka" in second
    lines = [json.loads(line) for line in second.splitlines() if line.startswith("{")]
    # The topics and the sink's Delta offsets were kept: it resumed where the first run ended.
    resumed = {
        line["partition"]
        for line in lines
        if line.get("msg") == "partition assigned"
        and line.get("topic") == "landbot.messages"
        and line.get("from") == "the Delta log"
    }
    assert resumed  # the first run's 50 messages went to some of the partitions


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    def ready() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    if eventually(ready, timeout=timeout, give_up=lambda: process.poll() is not None):
        return
    raise AssertionError(f"not ready in {timeout} s (exit code {process.poll()})")
