"""Start time and memory of each broker engine (docs/engines.md).

Start = launching the broker until it answers as the cluster this start expects; RSS after the
project's topics exist. Kafka's first start includes formatting its storage; the others restart
on the same storage. Run: ``.venv/bin/python -m benchmarks.bench_engines``.
"""

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from devtools.brokers import OwnBroker
from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker
from messagehooks.kafka import ensure_project_topics
from messagehooks.settings import Settings

STARTS = 3


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def measure(make: Callable[[], OwnBroker]) -> tuple[list[float], list[float]]:
    """Seconds to ready and MB resident, for `STARTS` starts."""
    starts, rss = [], []
    for _ in range(STARTS):
        broker = make()
        began = time.perf_counter()
        broker.start()
        try:
            starts.append(time.perf_counter() - began)
            asyncio.run(ensure_project_topics(Settings(kafka_bootstrap=broker.bootstrap)))
            time.sleep(2)  # let the JVM settle after creating the topics
            assert broker.pid is not None
            rss.append(rss_mb(broker.pid))
        finally:
            broker.stop()
    return starts, rss


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-engines-")) / "kafka"
    for name, make in (("tansu", EmbeddedBroker), ("kafka", lambda: KafkaBroker(home))):
        starts, rss = measure(make)
        print(
            f"{name}: start {', '.join(f'{s:.1f}' for s in starts)} s; "
            f"RSS {', '.join(f'{r:.0f}' for r in rss)} MB"
        )


if __name__ == "__main__":
    main()
