"""Subscribe to the `turn-pairs` topic and print each pair, or append it to a JSONL file.

A stand-alone subscriber written from docs/asyncapi.yaml alone: it needs only aiokafka and the
standard library (``pip install aiokafka``), none of the project's packages.

What the contract says, and what this consumer does about it:

* Channel ``{prefix}turn-pairs`` (prefix default ``landbot.``); key = chat id (UTF-8), so the
  pairs of one chat arrive in order, from one partition.
* Value = UTF-8 JSON matching docs/schemas/turn-pairs.v1.json. Records with another
  ``schema_version`` than the one this code was written for are skipped with a warning, and
  unknown fields are ignored (new optional fields may appear within a version).
* Delivery is at-least-once: a pair can be delivered again with the same ``pair_id`` (and the
  same content); repeats seen in this run are dropped. Offsets are committed after a record has
  been printed or written, so a restart resumes without losing a pair.
* Own consumer group (``--group``): never reuse the stream workers' or the dataset sink's group.
  A new group starts at the earliest offset, i.e. with the topic's history.

Examples (in this repository, with the project's venv, which has aiokafka; elsewhere any Python
3.11 with ``pip install aiokafka``)::

    .venv/bin/python examples/consume_turn_pairs.py --max 10 --timeout 60
    .venv/bin/python examples/consume_turn_pairs.py --jsonl pairs.jsonl --max 100 --timeout 60

Every flag has an environment variable: KAFKA_BOOTSTRAP, TOPIC_PREFIX, CONSUMER_GROUP (the
project's MESSAGEHOOKS_KAFKA_BOOTSTRAP and MESSAGEHOOKS_TOPIC_PREFIX are honoured too).
``--max N`` stops after N pairs, ``--timeout S`` after S seconds in all (as in ``messagehooks
tail``); without either it runs until Ctrl-C. Exit code 0 in each case.
"""

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

SCHEMA_VERSION = 1
"""The `schema_version` of turn-pairs records this consumer understands."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Print (or save as JSONL) the turn pairs of the pipeline.")
    parser.add_argument(
        "--bootstrap",
        default=env("KAFKA_BOOTSTRAP") or env("MESSAGEHOOKS_KAFKA_BOOTSTRAP") or "127.0.0.1:19092",
        help="Kafka bootstrap host:port (default: the embedded broker, 127.0.0.1:19092)",
    )
    parser.add_argument(
        "--prefix",
        default=env("TOPIC_PREFIX") or env("MESSAGEHOOKS_TOPIC_PREFIX") or "landbot.",
        help="topic prefix (default: landbot.)",
    )
    parser.add_argument(
        "--group",
        default=env("CONSUMER_GROUP") or "turn-pairs-example",
        help="consumer group id of this subscriber (default: turn-pairs-example)",
    )
    parser.add_argument("--jsonl", type=Path, help="append each pair as one JSON line to this file")
    parser.add_argument("--max", type=int, default=0, help="stop after this many pairs (default: never)")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="stop after this many seconds in all (default: never)"
    )
    return parser.parse_args(argv)


def describe(pair: dict[str, Any]) -> str:
    """One line per pair: ``[chat] role: prompt -> role: response (latency)``."""
    prompt = f"{pair['prompt_role']}: {pair['prompt_text']!r}"
    if not pair["answered"]:
        return f"[{pair['chat_id']}] {prompt} -> (unanswered)"
    response = f"{pair['response_role']}: {pair['response_text']!r}"
    return f"[{pair['chat_id']}] {prompt} -> {response} ({pair['latency_s']:.1f} s)"


async def consume(args: argparse.Namespace) -> int:
    topic = f"{args.prefix}turn-pairs"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",  # a new group reads the topic's history
        enable_auto_commit=False,  # commit only what has been handled (at-least-once)
    )
    out = args.jsonl.open("a", encoding="utf-8") if args.jsonl else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout if args.timeout > 0 else None
    seen: set[str] = set()
    count = 0
    await consumer.start()
    try:
        while not (args.max and count >= args.max):
            wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
            if wait <= 0:
                break
            batches = await consumer.getmany(timeout_ms=int(wait * 1000))
            handled = {}  # partition -> next offset to read, committed after handling
            for tp, records in batches.items():
                for record in records:
                    if args.max and count >= args.max:
                        break  # left uncommitted: the next run reads it
                    handled[tp] = record.offset + 1
                    pair = json.loads(record.value)
                    if pair.get("schema_version") != SCHEMA_VERSION:
                        print(
                            f"skipped a record of schema_version {pair.get('schema_version')}",
                            file=sys.stderr,
                        )
                        continue
                    if pair["pair_id"] in seen:
                        continue  # an at-least-once repeat (identical content)
                    seen.add(pair["pair_id"])
                    if out is not None:
                        out.write(json.dumps(pair, ensure_ascii=False) + "\n")
                        out.flush()
                    else:
                        print(describe(pair), flush=True)
                    count += 1
            if handled:
                await consumer.commit(handled)
    finally:
        await consumer.stop()
        if out is not None:
            out.close()
    print(f"{count} pair(s) from {topic}", file=sys.stderr)
    return 0


def main() -> int:
    try:
        return asyncio.run(consume(parse_args()))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
