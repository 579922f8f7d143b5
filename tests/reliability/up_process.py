"""`python -m messagehooks up` as a real process for tests: free ports, its own data dir."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from dataset import store
from devtools.tansu import free_port
from tests.factories import landbot_body, landbot_message
from tests.support.poll import eventually


def body_of(i: int) -> str:
    """A unique message text without digits (the PII masking would touch long digit runs)."""
    return "msg " + "".join(chr(97 + (i // 26**k) % 26) for k in range(4))


def post_messages(
    url: str,
    ids: range,
    client: httpx.Client,
    alive: Callable[[], bool] = lambda: True,
    keep_errors: list[dict] | None = None,
) -> Counter[int]:
    """POST message `i` of `ids` to `url`'s default hook, one per request; statuses counted."""
    statuses: Counter[int] = Counter()
    now = time.time()
    for i in ids:
        if not alive():
            statuses[0] += 1  # up is gone: nothing answers
            continue
        message = landbot_message(chat=1000 + i % 40, body=body_of(i), ts=now - 600 + i * 0.01, uuid=f"u{i}")
        for _ in range(3):  # a refused connection (the ingest restarting) is retried, like Landbot
            try:
                response = client.post(f"{url}/hooks/default", json=landbot_body(message), timeout=30)
            except httpx.TransportError:
                time.sleep(1)
                continue
            statuses[response.status_code] += 1
            if keep_errors is not None and response.status_code >= 500:
                try:
                    keep_errors.append(response.json())
                except ValueError:
                    keep_errors.append({"not_json": response.text[:200]})
            break
        else:
            statuses[0] += 1
    return statuses


def bodies_in(root: str) -> Counter[str]:
    """The `body` of every row of the `messages` table under `root`, counted."""
    if not store.exists(root, "messages"):
        return Counter()
    rows = store.open_table(root, "messages").to_pyarrow_table(columns=["body"]).column("body")
    return Counter(rows.to_pylist())


class UpProcess:
    """One `messagehooks up --no-simulate` (or simulating at `simulate_rate`); `stop` sends SIGTERM
    and waits for its drain."""

    def __init__(
        self, tmp: Path, data_dir: Path, name: str = "up", *, simulate_rate: float = 0.0, **env: str
    ) -> None:
        self.simulate = ["--simulate-rate", str(simulate_rate)] if simulate_rate else ["--no-simulate"]
        self.port, self.broker_port = free_port(), free_port()
        self.data_dir = data_dir
        self.log_path = tmp / f"{name}.log"
        self.env = {
            **os.environ,
            "MESSAGEHOOKS_PORT": str(self.port),
            "MESSAGEHOOKS_BROKER_PORT": str(self.broker_port),
            "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",
            "MESSAGEHOOKS_SINK_METRICS_PORT": "0",
            "MESSAGEHOOKS_PARTITIONS": "3",
            "MESSAGEHOOKS_SINK_FLUSH_INTERVAL": "0.5",
            **env,
        }
        self.env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "UpProcess":
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "messagehooks",
                    "up",
                    *self.simulate,
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until /readyz answers 200 (broker, topics, empty spool, and a healthy sink)."""
        self.wait_readyz(200, timeout)

    def wait_readyz(self, status: int, timeout: float = 60.0) -> httpx.Response:
        last: httpx.Response | None = None

        def answered() -> httpx.Response | None:
            nonlocal last
            if not self.alive():
                raise RuntimeError(f"up exited: {self.logs()[-3000:]}")
            try:
                last = httpx.get(f"{self.url}/readyz", timeout=2)
            except httpx.TransportError:
                return None
            return last if last.status_code == status else None

        if response := eventually(answered, timeout=timeout):
            return response
        raise TimeoutError(f"/readyz never answered {status}; last: {last.text if last else None}")

    def post(self, ids: range, client: httpx.Client, keep_errors: list[dict] | None = None) -> Counter[int]:
        """POST one message per request; the statuses it got, counted (5xx bodies to `keep_errors`)."""
        return post_messages(self.url, ids, client, self.alive, keep_errors)

    def bodies(self) -> Counter[str]:
        """The `body` of every row of the `messages` table, counted."""
        return bodies_in(str(self.data_dir / "datasets"))

    def wait_bodies(self, expected: set[str], timeout: float) -> Counter[str]:
        """Until the table holds every expected body (or the deadline); the table's bodies."""
        found = self.bodies()

        def complete() -> bool:
            nonlocal found
            found = self.bodies()
            return expected <= set(found)

        eventually(complete, timeout=timeout, interval=0.5)
        return found

    def children(self) -> dict[str, int]:
        """PIDs of up's children by role: broker, ingest, worker, sink."""
        if self.process is None:
            return {}
        out = subprocess.run(
            ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        roles: dict[str, int] = {}
        for line in out.splitlines():
            pid, _, args = line.strip().partition(" ")
            if "tansu" in args or "kafka.Kafka" in args or " broker " in f" {args} ":
                roles["broker"] = int(pid)
            for role in ("ingest", "worker", "sink", "simulate"):
                if args.endswith(f"messagehooks {role}"):
                    roles[role] = int(pid)
        return roles

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM and wait for the ordered drain; SIGKILL only past `timeout`."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()  # its children die with it (PR_SET_PDEATHSIG)
                self.process.wait()
        return self.process.returncode

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
