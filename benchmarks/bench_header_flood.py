"""Memory of a real ingest process under a header flood: N connections each sending M MB of headers.

Unauthenticated clients open `--connections` connections at once; each sends a request line and
then header lines (`--shape many`: 1 KB headers; `long`: one header of M MB) as fast as the
ingest reads them, never the blank line that ends the headers. The ingest's RSS is sampled
before, at its peak (VmHWM) and after every connection is closed. Also reports how many bytes
each connection got through before the ingest closed it, and what it answered.
No broker is needed: the ingest serves HTTP (and spools) without one.
Run: .venv/bin/python -m benchmarks.bench_header_flood [--connections 8] [--mb 60] [--shape many]
"""

import argparse
import json
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.tansu import free_port
from tests.integration.processes import IngestProcess

HERE = Path(__file__).resolve().parent
CHUNK = 64 * 1024


@dataclass
class Flood:
    """What one flooding connection managed to send and what it got back."""

    sent: int = 0
    answer: bytes = b""
    closed_by_server: bool = False


def header_bytes(shape: str) -> bytes:
    """One chunk of header lines (`many`) or of one endless header value (`long`)."""
    if shape == "many":
        line = b"X-Flood: " + b"a" * 1013 + b"\r\n"  # 1 KB a header
        return line * (CHUNK // len(line))
    return b"a" * CHUNK


def flood(port: int, total: int, shape: str, result: Flood, timeout: float) -> None:
    """Send `total` bytes of headers on one connection, or until the ingest closes it."""
    start = b"POST /hooks/default HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if shape == "long":
        start += b"X-Flood: "
    chunk = header_bytes(shape)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(start)
            while result.sent < total:
                sock.sendall(chunk)
                result.sent += len(chunk)
        except OSError:
            result.closed_by_server = True
        sock.settimeout(5.0)  # does the ingest answer, and close?
        try:
            while chunk := sock.recv(4096):
                result.answer += chunk
            result.closed_by_server = True
        except TimeoutError:
            pass  # still open: the ingest waits for the rest of the headers
        except OSError:
            result.closed_by_server = True


def measure(connections: int, megabytes: int, shape: str, tmp: Path) -> dict[str, object]:
    env = {
        "MESSAGEHOOKS_BROKER_PORT": str(free_port()),  # nothing there: not needed to serve HTTP
        "MESSAGEHOOKS_DATA_DIR": str(tmp),
        "MESSAGEHOOKS_LOG_LEVEL": "WARNING",
    }
    ingest = IngestProcess(env, tmp / "ingest.log").start()
    try:
        before = ingest.memory_kb()
        floods = [Flood() for _ in range(connections)]
        started = time.monotonic()
        threads = [
            threading.Thread(target=flood, args=(ingest.port, megabytes << 20, shape, f, 120.0))
            for f in floods
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - started
        time.sleep(2)  # the ingest drops the closed connections' state
        after = ingest.memory_kb()
        alive = ingest.alive()
    finally:
        ingest.stop()
    return {
        "connections": connections,
        "mb_per_connection": megabytes,
        "shape": shape,
        "rss_before_mb": round(before["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(after["VmHWM"] / 1024, 1),
        "rss_after_mb": round(after["VmRSS"] / 1024, 1),
        "seconds": round(seconds, 2),
        "most_sent_kb": round(max(f.sent for f in floods) / 1024, 1),
        "closed_by_server": sum(f.closed_by_server for f in floods),
        "answers": sorted({f.answer.split(b"\r\n", 1)[0].decode("latin-1") for f in floods}),
        "ingest_alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--mb", type=int, default=60, help="MB of headers each connection sends")
    parser.add_argument("--shape", choices=["many", "long"], default="many")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args.connections, args.mb, args.shape, Path(tmp))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
