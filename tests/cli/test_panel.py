"""`up`'s live panel shows the warnings its children log to files (an open hook)."""

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from rich.console import Console

from cli.status import Status, StatusBoard
from devtools.tansu import free_port
from messagehooks.settings import load_settings, open_hook_warnings

DEV_HOOK_WARNING = "no MESSAGEHOOKS_HOOKS configured: dev hook 'default' accepts any request without a token"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _rendered(status: Status) -> str:
    console = Console(file=io.StringIO(), width=200, record=True)
    console.print(status.table())
    return " ".join(console.export_text().split())


def test_the_panel_shows_standing_warnings_under_the_figures():
    warnings = tuple(open_hook_warnings(load_settings({})))
    assert warnings == (DEV_HOOK_WARNING,)
    board = StatusBoard(f"http://127.0.0.1:{free_port()}/metrics", "/nonexistent", warnings=warnings)
    status = board.read()  # nothing answers: the figures are "-", the warning is there all the same
    assert f"warning: {DEV_HOOK_WARNING}" in _rendered(status)
    assert "warning" not in _rendered(Status())


@pytest.mark.integration
def test_up_on_a_terminal_shows_the_dev_hook_warning_on_its_panel(tmp_path):
    env = {
        **os.environ,
        "MESSAGEHOOKS_PORT": str(free_port()),
        "MESSAGEHOOKS_BROKER_PORT": str(free_port()),
        "MESSAGEHOOKS_WORKER_METRICS_PORT": "0",
        "MESSAGEHOOKS_SINK_METRICS_PORT": "0",
        "MESSAGEHOOKS_BROKER_ENGINE": "tansu",  # the panel, not the engine, is under test
    }
    for name in ("MESSAGEHOOKS_KAFKA_BOOTSTRAP", "MESSAGEHOOKS_HOOKS"):
        env.pop(name, None)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    argv = [sys.executable, "-m", "messagehooks", "up", "--no-simulate", "--data-dir", str(tmp_path / "data")]
    # stderr is the terminal: the panel is drawn there (the children log to files).
    up = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=follower, start_new_session=True)
    os.close(follower)
    screen = ""
    try:
        deadline = time.monotonic() + 90
        while DEV_HOOK_WARNING not in screen and up.poll() is None and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    screen += ANSI.sub("", os.read(leader, 65536).decode(errors="replace"))
                except OSError:  # the terminal closed: up is gone
                    break
                screen = " ".join(screen.split())
        assert f"warning: {DEV_HOOK_WARNING}" in screen, screen[-2000:]
        assert "requests/s" in screen  # on the panel, not in a log line
        # The ingest still logs it, to its file under the panel.
        assert DEV_HOOK_WARNING in Path(tmp_path / "data" / "logs" / "ingest.log").read_text()
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()  # its children die with it (PR_SET_PDEATHSIG)
                up.wait()
        os.close(leader)
