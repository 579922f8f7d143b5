"""Batch backfill throughput: `features.batch.build_dataset` over N simulated messages.

Messages are normalized once from simulated Landbot chats (tests/integration/traffic.py) and
replicated under new chat and message ids up to N; the timed part is `build_dataset` alone
(the stream's oracle, also `messagehooks backfill`'s core). Median of `--repeat` runs.
Run: .venv/bin/python -m benchmarks.bench_backfill [--messages 1000000] [--repeat 3]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import msgspec

from features.batch import build_dataset
from messagehooks.schema import Message
from messagehooks.settings import Hook
from messagehooks.validation import normalize
from tests.integration.traffic import conversation_traffic

HERE = Path(__file__).resolve().parent


def simulated_messages(count: int) -> list[Message]:
    """`count` normalized messages: 2 000 simulated chats, replicated under fresh ids."""
    raw = conversation_traffic(2000, seed=1, start=1_790_000_000.0)
    base = [
        normalize(
            json.dumps(m).encode(),
            hook=Hook("bench"),
            received_at=0.0,
            request_id="",
        )
        for m in raw
    ]
    messages: list[Message] = []
    copy = 0
    while len(messages) < count:
        messages.extend(
            msgspec.structs.replace(m, chat_id=f"{m.chat_id}-{copy}", message_id=f"{m.message_id}-{copy}")
            for m in base
        )
        copy += 1
    return messages[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "backfill.json")
    args = parser.parse_args()
    messages = simulated_messages(args.messages)
    rates = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        pairs, _ = build_dataset(messages)
        rates.append(len(messages) / (time.perf_counter() - started))
    result = {
        "backfill_messages": float(len(messages)),
        "backfill_pairs": float(len(pairs)),
        "backfill_msgs_per_s": statistics.median(rates),
        "backfill_runs": rates,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"backfill {result['backfill_msgs_per_s']:,.0f} msg/s over {len(messages):,} messages")


if __name__ == "__main__":
    main()
