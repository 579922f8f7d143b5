"""Real processes for integration tests: the ingest as `python -m messagehooks ingest`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from messagehooks.broker import free_port


class IngestProcess:
    """The ingest served by uvicorn in a child process (killable with SIGKILL)."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = int(env.get("MESSAGEHOOKS_PORT") or free_port())
        self.env = {**os.environ, **env, "MESSAGEHOOKS_PORT": str(self.port)}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "IngestProcess":
        with self.log_path.open("ab") as log:
            self.process = self._spawn(log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingest exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError("ingest did not become healthy")

    def _spawn(self, log: IO[bytes]) -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            [sys.executable, "-m", "messagehooks", "ingest"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until /readyz says ready (broker reachable, topics present, spool empty)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"ingest not ready: {httpx.get(f'{self.url}/readyz').text}")

    def kill9(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")
