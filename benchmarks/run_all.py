"""`make bench`: every benchmark, one after the other, merged into results/latest.json.

Each benchmark runs as its own process (a clean interpreter, its own broker) and writes its
JSON; the figures are medians over repeated runs and every ratio was measured side by side in
the same run. The machine is shared and noisy: compare ratios, not absolute numbers.
Ingest, stream and sink (with e2e) run once per broker engine, Tansu then Apache Kafka, each
ratio against ceilings measured on the same broker; Kafka is skipped, with the reason printed,
where it cannot run. The top-level figures are Tansu's (as before the engines), `engines` holds
each engine's.
Run: .venv/bin/python -m benchmarks.run_all [--quick] [--engines tansu,kafka]
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

from benchmarks.engine import ENGINES, unavailable

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
    ("bench_upkeep", ["--commits", "2250", "--repeat", "5"], ["--commits", "300", "--repeat", "2"]),
    ("bench_exports", ["--messages", "300000", "--repeat", "3"], ["--messages", "30000", "--repeat", "1"]),
]  # fmt: skip

PER_ENGINE = ("bench_ingest", "bench_stream", "bench_sink")
"""The benchmarks that run once per engine (the others use no broker, or only as a source)."""

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
    "upkeep_live_files",
    "upkeep_load_speedup",
    "export_hf_rows_per_s",
    "export_hf_vs_parquet",
    "export_chat_jsonl_rows_per_s",
    "export_chat_jsonl_vs_parquet",
]

ENGINE_KEYS = [
    "ingest_rps",
    "noop_rps",
    "bare_produce_rps",
    "ingest_p99_ms",
    "ingest_vs_noop",
    "ingest_vs_bare_produce",
    "stream_msgs_per_s",
    "faust_forward_msgs_per_s",
    "raw_consume_msgs_per_s",
    "stream_vs_faust_forward",
    "stream_vs_raw_consume",
    "sink_rows_per_s",
    "delta_append_rows_per_s",
    "sink_batch_rows",
    "sink_vs_delta_append",
    "e2e_p50_s",
    "e2e_p95_s",
]
"""Each engine's figures, with the ceilings its ratios were measured against."""

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
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help="comma-separated engines to run (default: tansu,kafka)"
    )
    args = parser.parse_args()
    wanted = [name.strip() for name in args.engines.split(",") if name.strip()]
    if "tansu" not in wanted or not set(wanted) <= set(ENGINES):
        parser.error(f"--engines must include tansu and name only {', '.join(ENGINES)}")
    skipped = {engine: why for engine in wanted if (why := unavailable(engine))}
    for engine, why in skipped.items():
        print(f"== {engine} skipped: {why}", flush=True)
    engines = [engine for engine in wanted if engine not in skipped]
    RESULTS.mkdir(exist_ok=True)
    merged: dict[str, dict[str, Any]] = {engine: {} for engine in engines}
    seconds: dict[str, float] = {}
    for module, full, quick in BENCHMARKS:
        for engine in engines if module in PER_ENGINE else ["tansu"]:
            label = module if engine == "tansu" else f"{module} --engine {engine}"
            started = time.monotonic()
            merged[engine].update(_run(module, quick if args.quick else full, engine))
            seconds[label] = round(time.monotonic() - started, 1)
    tansu = merged["tansu"]
    tansu["backfill_vs_stream"] = float(tansu["backfill_msgs_per_s"]) / float(tansu["stream_msgs_per_s"])
    figures = {key: tansu.get(key) for key in KEYS}
    per_engine: dict[str, Any] = {engine: _engine_report(merged[engine]) for engine in engines}
    per_engine.update({engine: {"skipped": why} for engine, why in skipped.items()})
    report = {
        "measured_at": datetime.now(tz=UTC).isoformat(),
        "machine": {"python": platform.python_version(), "cpus": _cpus(), "platform": platform.platform()},
        "quick": args.quick,
        "seconds": seconds,
        **figures,
        "targets": {key: _verdict(key, figures.get(key)) for key in TARGETS},
        "engines": per_engine,
        "details": tansu,
    }
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=str))
    _print_table(merged, skipped)
    print(f"\nwritten to {RESULTS / 'latest.json'}")


def _run(module: str, arguments: list[str], engine: str) -> dict[str, Any]:
    """Run one benchmark on `engine` in its own process; its JSON figures."""
    name = module.removeprefix("bench_")
    out = RESULTS / (f"{name}.json" if engine == "tansu" else f"{name}-{engine}.json")
    engine_option = ["--engine", engine] if module in PER_ENGINE else []
    command = [sys.executable, "-m", f"benchmarks.{module}", *arguments, *engine_option, "--out", str(out)]
    print(f"== {module}" + (f" ({engine})" if engine_option else ""), flush=True)
    subprocess.run(command, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def _engine_report(merged: dict[str, Any]) -> dict[str, Any]:
    """One engine's figures, their verdicts and everything its benchmarks wrote."""
    figures = {key: merged.get(key) for key in ENGINE_KEYS}
    targets = {key: _verdict(key, figures[key]) for key in TARGETS if key in figures}
    return {**figures, "targets": targets, "details": merged}


def _print_table(merged: dict[str, dict[str, Any]], skipped: dict[str, str]) -> None:
    """Figure | one column per engine | target with each engine's verdict."""
    columns = [*merged, *skipped]
    print(f"\n{'figure':32}" + "".join(f"{engine:>14}" for engine in columns) + "  target")
    for key in dict.fromkeys([*ENGINE_KEYS, *KEYS]):
        ran = [engine for engine in merged if key in ENGINE_KEYS or engine == "tansu"]
        cells = [
            _cell(merged[engine].get(key)) if engine in ran else "skipped" if engine in skipped else "-"
            for engine in columns
        ]
        line = f"{key:32}" + "".join(f"{cell:>14}" for cell in cells)
        if key in TARGETS:
            operator, bound = TARGETS[key]
            verdicts = [(engine, _verdict(key, merged[engine].get(key))) for engine in ran]
            said = ", ".join(f"{engine} {v}" for engine, v in verdicts) if len(ran) > 1 else verdicts[0][1]
            line += f"  {operator} {bound:g}: {said}"
        print(line)
    print("(-: measured once, on Tansu or without a broker)")
    for engine, why in skipped.items():
        print(f"{engine} skipped: {why}")


def _cell(value: Any) -> str:
    return "missing" if value is None else f"{float(value):.3f}"


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
