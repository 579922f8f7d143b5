"""examples/consume_turn_pairs.py, run as a subscriber would run it, against a broker of each engine."""

import ast
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from features.batch import build_dataset
from messagehooks.kafka import ensure_topics, make_producer
from tests.factories import example_chat

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "consume_turn_pairs.py"


def test_the_example_needs_only_aiokafka_and_the_stdlib():
    imported = set()
    for node in ast.walk(ast.parse(EXAMPLE.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"aiokafka"}


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await ensure_topics(bootstrap, [topic], partitions=2)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"42")
    finally:
        await producer.stop()


def _run(broker, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESSAGEHOOKS_")}
    env.update(KAFKA_BOOTSTRAP=broker.bootstrap, TOPIC_PREFIX=prefix)
    # -I: no project directory on sys.path, as for a subscriber who only has the file.
    return subprocess.run(
        [sys.executable, "-I", str(EXAMPLE), *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.integration
def test_it_prints_saves_and_resumes(broker, unique, tmp_path):
    pairs, _ = build_dataset(example_chat(), conversation_gap=60.0)
    encoded = [msgspec.json.encode(pair) for pair in pairs]
    future = json.loads(encoded[0]) | {"schema_version": 2, "pair_id": "from-the-future"}
    # A record of an unknown version (skipped), the pairs, then a redelivery of the first pair.
    values = [json.dumps(future).encode(), *encoded, encoded[0]]
    prefix = f"ex{unique}."
    asyncio.run(_produce(broker.bootstrap, f"{prefix}turn-pairs", values))

    printed = _run(broker, prefix, "--group", f"g{unique}", "--max", str(len(pairs)), "--timeout", "60")
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert len(lines) == len(pairs)
    for line, pair in zip(lines, pairs, strict=True):
        assert line.startswith(f"[42] {pair.prompt_role}: {pair.prompt_text!r} -> ")
        assert line.endswith("(unanswered)") == (not pair.answered)
    assert "skipped a record of schema_version 2" in printed.stderr

    # Another group reads everything again; the redelivered pair is written once.
    out = tmp_path / "pairs.jsonl"
    saved = _run(broker, prefix, "--group", f"h{unique}", "--jsonl", str(out), "--timeout", "12")
    assert saved.returncode == 0, saved.stderr
    assert saved.stdout == ""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["pair_id"] for r in rows] == [p.pair_id for p in pairs]
    assert rows == [json.loads(e) for e in encoded]

    # The first group resumes after its committed offset: only the record it had not handled.
    resumed = _run(broker, prefix, "--group", f"g{unique}", "--timeout", "12")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines() == lines[:1]
