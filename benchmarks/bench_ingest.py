"""Ingest throughput vs ceilings measured side by side in the same run (docs/BENCHMARKS.md: method).

Servers are pinned to CPU 0 (taskset), wrk to CPU 1; 2 s warm-up, then `--duration` s per run,
`--repeat` runs, configurations round-robin; medians reported, ratios to the no-op endpoint.
Run: .venv/bin/python -m benchmarks.bench_ingest [--engine kafka]  (needs wrk: apt-get install wrk)
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.engine import add_engine_option, broker_env, started_broker
from devtools.tansu import free_port

HERE = Path(__file__).resolve().parent
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--log-level",
    "warning",
]


def start_server(target: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = ["taskset", "-c", "0", *target] if shutil.which("taskset") else target
    environ = {**os.environ, **env}
    environ.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)  # the servers use the broker started here
    process = subprocess.Popen(command, env=environ, start_new_session=True, cwd=HERE.parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/hooks/default", content=b'{"messages":[]}', timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server {target} did not start")


def wrk(port: int, seconds: float, connections: int) -> dict[str, float]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--latency",
        "-s",
        str(HERE / "post.lua"),
        f"http://127.0.0.1:{port}",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p99_ms": float(p99.group(1)) * scale,
        "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ingest.json")
    add_engine_option(parser)
    args = parser.parse_args()
    with started_broker(args.engine) as broker, tempfile.TemporaryDirectory() as data_dir:
        env = {
            **broker_env(broker),
            "MESSAGEHOOKS_DATA_DIR": data_dir,
            "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
            "BENCH_BOOTSTRAP": broker.bootstrap,
            "BENCH_TOPIC": "landbot.messages",
        }
        ports = {name: free_port() for name in ("noop", "bare_produce", "ingest")}
        targets = {
            "noop": [*UVICORN, "benchmarks.noop_app:app", "--port", str(ports["noop"])],
            "bare_produce": [
                *UVICORN,
                "benchmarks.bare_produce_app:app",
                "--port",
                str(ports["bare_produce"]),
            ],
            "ingest": [sys.executable, "-m", "messagehooks", "ingest", "--port", str(ports["ingest"])],
        }
        servers = {}
        try:
            servers["ingest"] = start_server(targets["ingest"], ports["ingest"], env)  # creates the topics
            for name in ("noop", "bare_produce"):
                servers[name] = start_server(targets[name], ports[name], env)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for name in targets:
                wrk(ports[name], 2, args.connections)  # warm-up
            for _ in range(args.repeat):
                for name in targets:
                    runs[name].append(wrk(ports[name], args.duration, args.connections))
        finally:
            for process in servers.values():
                process.terminate()
                process.wait(10)
    median = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    result = {
        "engine": args.engine,
        "connections": args.connections,
        "ingest_rps": median["ingest"]["rps"],
        "ingest_p99_ms": median["ingest"]["p99_ms"],
        "ingest_non_2xx": median["ingest"]["non_2xx"],
        "noop_rps": median["noop"]["rps"],
        "bare_produce_rps": median["bare_produce"]["rps"],
        "ingest_vs_noop": median["ingest"]["rps"] / median["noop"]["rps"],
        "ingest_vs_bare_produce": median["ingest"]["rps"] / median["bare_produce"]["rps"],
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{'endpoint':<14}{'req/s':>10}{'p99 ms':>10}")
    for name in targets:
        print(f"{name:<14}{median[name]['rps']:>10.0f}{median[name]['p99_ms']:>10.1f}")
    print(
        f"ingest_vs_noop={result['ingest_vs_noop']:.2f} "
        f"ingest_vs_bare_produce={result['ingest_vs_bare_produce']:.2f}"
    )


if __name__ == "__main__":
    main()
