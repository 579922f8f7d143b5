"""The sink's upkeep: an hour of its commits to `messages`, with the upkeep and without.

Each arm writes the same N commits of six message rows with their offsets, as the sink's
`_commit` does (`store.write`), over two date partitions; one arm runs `TableUpkeep` after each
commit when due (the sink's defaults: compaction every 100 files, vacuum every hour with a
week's retention), the other never. Then, per arm: files the table's newest version reads, files
and bytes on disk, and the median time to open the table, to list the newest 20 versions (what
`dataset versions` does), to list them all, and to read the whole table. Commits and upkeep runs
are timed as they happen (median and max of the upkeep runs).
Run: .venv/bin/python -m benchmarks.bench_upkeep [--commits 2250] [--repeat 5]
"""

import argparse
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataset import store
from dataset.rows import masker, message_row
from dataset.upkeep import TableUpkeep, UpkeepPolicy
from tests.factories import BASE_TS, second_of_messages

HERE = Path(__file__).resolve().parent
MASK = masker(True)
ROWS = 6
APP_ID = "bench:landbot.messages:0:cluster/topic"


def _commit(root: str, n: int, commits: int) -> None:
    midnight = math.ceil(BASE_TS / 86_400) * 86_400
    ts = midnight - commits // 2 * 1.6 + n * 1.6
    messages = second_of_messages(n, ts, ROWS)
    rows = [
        message_row(m, late=False, partition=0, offset=n * ROWS + j, mask=MASK)
        for j, m in enumerate(messages)
    ]
    store.write(root, "messages", store.rows_to_arrow("messages", rows), offsets={APP_ID: (n + 1) * ROWS})


def _median_seconds(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def arm(root: str, commits: int, *, upkeep: bool, repeat: int) -> dict[str, Any]:
    """Write `commits` commits (with or without the upkeep) and measure the table they leave."""
    schedule = TableUpkeep(root, "messages", UpkeepPolicy(100, 3600.0, 168.0))
    upkeep_runs: list[float] = []
    started = time.perf_counter()
    for n in range(commits):
        _commit(root, n, commits)
        schedule.committed(1)
        if upkeep and schedule.due():
            upkeep_runs.append(schedule.run().seconds)
    write_seconds = time.perf_counter() - started
    files = [p for p in Path(root, "messages").rglob("*.parquet") if "_delta_log" not in p.parts]
    return {
        "commits": commits,
        "write_seconds": round(write_seconds, 2),
        "upkeep_runs": len(upkeep_runs),
        "upkeep_median_s": round(statistics.median(upkeep_runs), 4) if upkeep_runs else None,
        "upkeep_max_s": round(max(upkeep_runs), 4) if upkeep_runs else None,
        "live_files": len(store.open_table(root, "messages").file_uris()),
        "disk_files": len(files),
        "disk_bytes": sum(p.stat().st_size for p in files),
        "open_s": round(_median_seconds(lambda: store.open_table(root, "messages"), repeat), 4),
        "versions_newest_20_s": round(
            _median_seconds(lambda: store.versions(root, "messages", limit=20), repeat), 4
        ),
        "versions_all_s": round(_median_seconds(lambda: store.versions(root, "messages"), repeat), 4),
        "load_table_s": round(_median_seconds(lambda: store.load("messages", root=root), repeat), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=2250, help="commits: 2250 is an hour of make run")
    parser.add_argument("--repeat", type=int, default=5, help="timings per read (median)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "upkeep.json")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    for name, upkeep in (("with_upkeep", True), ("without", False)):
        with tempfile.TemporaryDirectory(prefix="bench-upkeep-") as root:
            result[name] = arm(root, args.commits, upkeep=upkeep, repeat=args.repeat)
        print(name, json.dumps(result[name]), flush=True)
    result["upkeep_live_files"] = result["with_upkeep"]["live_files"]
    result["upkeep_load_speedup"] = result["without"]["load_table_s"] / result["with_upkeep"]["load_table_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
