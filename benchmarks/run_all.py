"""`make bench`: every benchmark, one after the other, merged into results/latest.json.

Each benchmark runs as its own process (a clean interpreter, its own broker) and writes its
JSON; the figures are medians over repeated runs and every ratio was measured side by side in
the same run. The machine is shared and noisy: compare ratios, not absolute numbers.
Run: .venv/bin/python -m benchmarks.run_all [--quick]
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# (module, arguments, arguments with --quick)
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench_ingest", ["--repeat", "3", "--duration", "8"], ["--repeat", "1", "--duration", "4"]),
    ("bench_stream", ["--messages", "60000", "--repeat", "3", "--two-workers"],
     ["--messages", "15000", "--repeat", "1"]),
    ("bench_sink", ["--pairs", "100000", "--rate", "200", "--seconds", "20", "--repeat", "3"],
     ["--pairs", "20000", "--rate", "200", "--seconds", "8", "--repeat", "1"]),
    ("bench_backfill", ["--messages", "1000000", "--repeat", "3"], ["--messages", "100000", "--repeat", "1"]),
    ("bench_memory", ["--chats", "100000"], ["--chats", "10000"]),
]  # fmt: skip

KEYS = [
    "ingest_rps",
    "ingest_p99_ms",
    "ingest_vs_noop",
    "ingest_vs_bare_produce",
    "stream_msgs_per_s",
    "stream_vs_faust_forward",
    "stream_vs_raw_consume",
    "sink_rows_per_s",
    "sink_batch_rows",
    "sink_vs_delta_append",
    "e2e_p50_s",
    "e2e_p95_s",
    "backfill_msgs_per_s",
    "backfill_vs_stream",
    "bytes_per_open_conversation",
    "worker_rss_mb",
]

TARGETS = {
    "ingest_vs_noop": (">=", 0.45),
    "ingest_vs_bare_produce": (">=", 0.8),
    "ingest_p99_ms": ("<=", 20.0),
    "stream_vs_faust_forward": (">=", 1.0),
    "e2e_p95_s": ("<=", 2.0),
    "backfill_msgs_per_s": (">=", 200_000.0),
    "bytes_per_open_conversation": ("<=", 2048.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test)")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    merged: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for module, full, quick in BENCHMARKS:
        out = RESULTS / f"{module.removeprefix('bench_')}.json"
        started = time.monotonic()
        command = [
            sys.executable,
            "-m",
            f"benchmarks.{module}",
            *(quick if args.quick else full),
            "--out",
            str(out),
        ]
        print(f"== {module}", flush=True)
        subprocess.run(command, check=True)
        seconds[module] = round(time.monotonic() - started, 1)
        merged.update(json.loads(out.read_text()))
    stream = float(merged["stream_msgs_per_s"])
    merged["backfill_vs_stream"] = float(merged["backfill_msgs_per_s"]) / stream
    figures = {key: merged.get(key) for key in KEYS}
    report = {
        "measured_at": datetime.now(tz=UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "quick": args.quick,
        "seconds": seconds,
        **figures,
        "targets": {key: _verdict(key, figures.get(key)) for key in TARGETS},
        "details": merged,
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\n{'figure':32} {'value':>14}  target")
    for key in KEYS:
        value = figures[key]
        target = TARGETS.get(key)
        verdict = f"{target[0]} {target[1]:g}: {_verdict(key, value)}" if target else ""
        print(f"{key:32} {float(value or 0):14.3f}  {verdict}")
    print(f"\nwritten to {RESULTS / 'latest.json'}")


def _verdict(key: str, value: Any) -> str:
    if value is None:
        return "missing"
    operator, bound = TARGETS[key]
    number = float(value)
    return "holds" if (number >= bound if operator == ">=" else number <= bound) else "missed"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
