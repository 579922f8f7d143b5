"""README walked the way a user does: every command of "Run it" and "Your first hour", in order.

The walk runs README's commands as written, in a copy of the checkout (tests/integration/
checkout.py: its data/ is the default data dir, a developer's own is never touched), against
the pipeline `make run` starts: the Makefile's `run` recipe, read with ``make -n``. Each command
must exit 0 and end by itself within its bound (a command killed at its bound fails the walk);
each one's seconds are printed (``pytest -rP`` shows them).

The timeline is compressed by `SCALE` through the environment alone (the conversation gap, the
lateness, the simulated think times and README's "after N minutes" shorter, the simulated rate
higher), plus the small table `SUBSTITUTIONS`. What the walk runs instead of a command, or
does not run, is `HANDLINGS`: a command that matches none of them (new in README) fails the
walk, so README cannot grow a command no test runs.
"""

import importlib.metadata
import os
import re
import shlex
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from cli.supervisor import DEMO_CONVERSATION_GAP
from devtools.tansu import free_port
from messagehooks.settings import ENV_PREFIX, Settings
from tests.integration.checkout import CHECKOUT, copy_of_the_checkout, imported_from, with_the_venv
from tests.integration.readme_walk import (
    BASELINE,
    DUMMY,
    Command,
    commands,
    dummy_not_beaten,
    make_recipe,
    printed_metrics,
)

pytestmark = pytest.mark.integration

README = CHECKOUT / "README.md"
COPIED = ("Makefile", "tests/fixtures/landbot")
"""Beyond the packages: the recipe of `make run`, and the samples README's curl posts."""

SCALE = 4.0
"""How many times faster the walk's clock runs than a user's: README's demo gap of 120 s is 30 s,
its "after 10 minutes" is 150 s, the simulated customers and agents think 4 times faster and the
simulator sends 4 x 5 messages/s: the dataset after N README minutes holds the chats, and the
open conversations, of a user's after N minutes."""
DEFAULTS = Settings()
COMPRESSED = {
    "CONVERSATION_GAP": f"{DEMO_CONVERSATION_GAP / SCALE:g}",
    "ALLOWED_LATENESS": f"{DEFAULTS.allowed_lateness / SCALE:g}",
    "SIMULATE_TIME_SCALE": f"{DEFAULTS.simulate_time_scale / SCALE:g}",
    "SIMULATE_RATE": f"{DEFAULTS.simulate_rate * SCALE:g}",
}


def offline_hugging_face(tmp_path: Path) -> dict[str, str]:
    """The export steps' `datasets` offline (as the test machine is), its cache in the test's tmp_path."""
    return {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "huggingface")}


README_PORT = "127.0.0.1:8000"
SUBSTITUTIONS = ((README_PORT, "127.0.0.1:{port}"),)
"""Text replaced in a command before it runs: the ingest listens on a free port, not 8000."""

START_BOUND = 240.0
"""Seconds `make run` may take until its ingest is ready (/readyz 200: broker, topics, sink)."""
STOP_BOUND = 90.0
"""Seconds a Ctrl-C may take to stop `make run` (README: "within seconds"; the sink drains)."""
TAIL_MARGIN = 60.0
"""Seconds a `tail` may run past its --timeout (Python's start, the broker's metadata)."""
WALK_BOUND = 1500.0
"""Seconds the whole walk may take (about 4 minutes per engine on a loaded 2-core machine); each
command has its own, smaller bound."""


@dataclass(frozen=True)
class Handling:
    """How the walk runs the README commands that match `pattern` (a regex, from the start)."""

    pattern: str
    how: str
    """"run" (as written, substituted), "pipeline" (make run), "export", "instead" or "not run"."""
    bound: float = 0.0
    why: str = ""
    instead: "Callable[[Walk, Command], None] | None" = None


NOT_INSTALLED_FOR_THE_WALK = {"jupyterlab"}
"""Packages of the notebooks extra only `jupyter lab` uses, which the walk replaces."""


def handling(command: Command) -> Handling | None:
    """The walk's handling of `command`, or None when it knows none (a new README command)."""
    flat = " ".join(command.text.replace("\\\n", " ").split())
    return next((h for h in HANDLINGS if re.match(h.pattern, flat)), None)


def test_every_readme_command_has_a_handling():
    found = commands(README.read_text())
    assert [c.text for c in found if handling(c) is None] == []
    not_run = [c.text for c in found if handling(c).how == "not run"]
    assert not_run == ["docker compose up --build", "docker compose --profile ui up"]
    for name in ("Run it", "Your first hour"):
        assert any(c.section == name and handling(c).how == "pipeline" for c in found), name


def test_commands_are_read_as_a_shell_reads_them():
    readme = (
        "## Run it\n```sh\nmake run   # 1. after 3 minutes\ncurl -d '#x' \\\n  URL\n# {\"ok\":…}\n\n"
        "# a note\nnew-tool --flag\npython -c 'import x  # not a comment\nprint(x)'  # a comment\n"
        "```\n## Test it\n```sh\nmake test\n```\n"
    )
    found = commands(readme)
    assert [(c.text, c.comment, c.expected) for c in found] == [
        ("make run", "1. after 3 minutes", ""),
        ("curl -d '#x' \\\n  URL", "", '{"ok":…}'),
        ("new-tool --flag", "", ""),
        ("python -c 'import x  # not a comment\nprint(x)'", "a comment", ""),
    ]
    assert found[0].waits_minutes() == 3.0
    assert found[1].expects('{"ok":1}\n')
    assert not found[1].expects('{"error":1}')
    assert [handling(c) is None for c in found] == [False, False, True, True]


@dataclass
class Timing:
    """One line of the walk's report: what README says, how long it took, how it ended."""

    section: str
    command: str
    seconds: float
    outcome: str
    readme_minute: float
    """When it ended, in README minutes since the first `make run` (the walk's seconds x SCALE / 60)."""

    def line(self) -> str:
        first = self.command.splitlines()[0].rstrip(" \\")
        done = f"{self.seconds:7.1f} s, done at README minute {self.readme_minute:4.1f}"
        return f"{done}  [{self.section}] {first}  -> {self.outcome}"


@dataclass
class Finished:
    """A command's end: exit code (None: killed at its bound), output, seconds."""

    code: int | None
    out: str
    err: str
    seconds: float

    def failure(self, what: str) -> str:
        ended = (
            f"killed at its bound after {self.seconds:.0f} s" if self.code is None else f"exit {self.code}"
        )
        return f"{what}: {ended}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"


def run_bounded(args: list[str], cwd: Path, env: dict[str, str], bound: float) -> Finished:
    """Run `args` in its own process group; past `bound` seconds, kill the group."""
    started = time.monotonic()
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=bound)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        code = None
    return Finished(code, out, err, time.monotonic() - started)


@dataclass
class Walk:
    """A user's terminal session in `checkout`: its variables, the running `make run`, the report."""

    checkout: Path
    env: dict[str, str]
    port: int
    logs: Path
    pipeline: subprocess.Popen[bytes] | None = None
    clock_started: float | None = None
    """When the walk's first `make run` started, on the fresh copy: README's minutes count from it."""
    report: list[Timing] = field(default_factory=list)

    def do(self, command: Command) -> None:
        found = handling(command)
        assert found is not None, f"README command the walk does not know how to run: {command.text}"
        waited = self.wait_as_readme_says(command)
        if waited:
            self.note(command.section, "(waiting, as README says)", waited, command.comment)
        if found.how == "not run":
            self.note(command.section, command.text, 0.0, f"not run: {found.why}")
        elif found.how == "export":
            name, _, value = shlex.split(command.text)[1].partition("=")
            self.env[name] = value
            self.note(command.section, command.text, 0.0, "exported")
        elif found.how == "pipeline":
            self.start_pipeline(command)
        elif found.instead is not None:
            found.instead(self, command)
        else:
            self.run(command, bound_of(command, found))

    def note(self, section: str, command: str, seconds: float, outcome: str) -> None:
        """A line of the report, with the README minute it ended at (since the first `make run`)."""
        since = time.monotonic() - (self.clock_started or time.monotonic())
        self.report.append(Timing(section, command, seconds, outcome, since * SCALE / 60))

    def wait_as_readme_says(self, command: Command) -> float:
        """Sleep until README's "after N minutes" (compressed) since `make run` started; seconds slept."""
        due = (self.clock_started or time.monotonic()) + command.waits_minutes() * 60 / SCALE
        waited = max(0.0, due - time.monotonic())
        time.sleep(waited)
        return waited

    def run(self, command: Command, bound: float, text: str | None = None) -> Finished:
        """`command` (or `text` the walk runs instead) in bash; it must exit 0 within `bound`."""
        shell = text if text is not None else substituted(command.text, self.port)
        finished = run_bounded(["bash", "-c", shell], self.checkout, self.env, bound)
        outcome = (
            "ok" if finished.code == 0 else ("killed" if finished.code is None else f"exit {finished.code}")
        )
        self.note(command.section, shell, finished.seconds, outcome)
        assert finished.code == 0, finished.failure(shell)
        assert command.expects(finished.out), finished.failure(f"README shows {command.expected!r}")
        for check in CHECKS:
            self.report[-1].outcome += check(command, finished)
        return finished

    def start_pipeline(self, command: Command) -> None:
        self.stop_pipeline(command.section)
        (recipe,) = make_recipe(self.checkout, "run")  # one line: the walk runs it in the background
        started = time.monotonic()
        with (self.logs / "make-run.log").open("ab") as log:
            self.pipeline = subprocess.Popen(
                ["bash", "-c", recipe],
                cwd=self.checkout,
                env=self.env,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        if self.clock_started is None:
            self.clock_started = started
        ready = wait_ready(f"http://127.0.0.1:{self.port}/readyz", self.pipeline, START_BOUND)
        outcome = "ready" if ready else "NOT ready"
        self.note(command.section, f"make run -> {recipe}", time.monotonic() - started, outcome)
        assert ready, f"make run: not ready within {START_BOUND:g} s\n{self.pipeline_log()}"

    def stop_pipeline(self, section: str) -> None:
        """Ctrl-C in `make run`'s terminal (SIGINT to its process group); it must exit 0 within the bound."""
        if self.pipeline is None or self.pipeline.poll() is not None:
            assert self.pipeline is None, f"make run ended by itself\n{self.pipeline_log()}"
            return
        started = time.monotonic()
        os.killpg(self.pipeline.pid, signal.SIGINT)
        try:
            code: int | None = self.pipeline.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            os.killpg(self.pipeline.pid, signal.SIGKILL)
            self.pipeline.wait()
            code = None
        self.pipeline = None
        self.note(section, "Ctrl-C in make run", time.monotonic() - started, f"exit {code}")
        assert code == 0, f"make run after Ctrl-C: exit {code}\n{self.pipeline_log()}"

    def abandon_pipeline(self) -> None:
        """After a failed step: Ctrl-C as a user would (`up` stops its children, which run in process
        groups of their own, so a SIGKILL of make's group alone would orphan them), then SIGKILL; reaped."""
        if self.pipeline is not None and self.pipeline.poll() is None:
            os.killpg(self.pipeline.pid, signal.SIGINT)
            try:
                self.pipeline.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                os.killpg(self.pipeline.pid, signal.SIGKILL)
                self.pipeline.wait()
        self.pipeline = None

    def pipeline_log(self) -> str:
        return (self.logs / "make-run.log").read_text(errors="replace")[-4000:]


def substituted(text: str, port: int) -> str:
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new.format(port=port))
    return text


def bound_of(command: Command, found: Handling) -> float:
    """A command's bound: its handling's, plus its own --timeout for a `tail`."""
    timeout = re.search(r"--timeout\s+(\d+(?:\.\d+)?)", command.text)
    return found.bound + (float(timeout.group(1)) if timeout and "tail" in command.text else 0.0)


def wait_ready(url: str, process: subprocess.Popen[bytes], bound: float) -> bool:
    """Until `url` answers 200 (True), the process ends or `bound` seconds pass (False)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    return False


def notebooks_extra_installed(walk: Walk, command: Command) -> None:
    """Instead of `pip install -e '.[notebooks]'`: the extra's packages are there, at allowed versions."""
    started = time.monotonic()
    project = tomllib.loads((walk.checkout / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["optional-dependencies"]["notebooks"]]
    missing = [
        str(r)
        for r in wanted
        if r.name not in NOT_INSTALLED_FOR_THE_WALK and not r.specifier.contains(_version(r.name) or "0.dev0")
    ]
    walk.note(command.section, command.text, time.monotonic() - started, "checked instead")
    assert missing == [], f"{command.text}: not installed at an allowed version: {missing}"


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def notebooks_executed(walk: Walk, command: Command) -> None:
    """Instead of `jupyter lab notebooks/`: each notebook executed, in order, its kernel in notebooks/."""
    found = handling(command)
    assert found is not None
    notebooks = sorted(p.name for p in (walk.checkout / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebook in notebooks/"
    for name in notebooks:
        walk.run(command, found.bound, f".venv/bin/jupyter execute notebooks/{name}")


HANDLINGS = (
    Handling(
        r"make run$",
        "pipeline",
        START_BOUND,
        "the Makefile's run recipe in the background; a "
        "running one is stopped first with Ctrl-C, in its terminal, as README says",
    ),
    Handling(r"export MESSAGEHOOKS_\w+=", "export", why="for every command after it, as in a shell"),
    Handling(r"curl ", "run", 30.0),
    Handling(r"\.venv/bin/messagehooks tail ", "run", TAIL_MARGIN, "its bound: --timeout + the margin"),
    Handling(r"\.venv/bin/messagehooks dataset ", "run", 120.0),
    Handling(r"\.venv/bin/python -c ", "run", 120.0),
    Handling(r"\.venv/bin/messagehooks train ", "run", 600.0),
    Handling(
        r"\.venv/bin/pip install -e '\.\[notebooks\]'$",
        "instead",
        why="the shared .venv is not "
        "changed: the walk checks that the extra's packages are installed at versions it allows "
        "(jupyterlab aside: the walk executes the notebooks instead of opening JupyterLab)",
        instead=notebooks_extra_installed,
    ),
    Handling(
        r"\.venv/bin/jupyter lab notebooks/$",
        "instead",
        600.0,
        "each notebook of notebooks/, in "
        "order, with `jupyter execute` (nbclient): its kernel starts in notebooks/, as in JupyterLab",
        instead=notebooks_executed,
    ),
    Handling(r"docker compose ", "not run", why="no Docker engine on the test machine"),
)


def printed_records(command: Command, finished: Finished) -> str:
    """A `tail` printed at least one record (README says they arrive); a note of how many."""
    if " tail " not in f" {command.text} ":
        return ""
    headers = re.findall(r"^# \S+\[\d+\]@\d+ key=", finished.out, re.MULTILINE)
    assert headers, finished.failure(f"{command.text}: no record printed")
    return f", {len(headers)} records"


def baseline_beats_the_dummy(command: Command, finished: Finished) -> str:
    """A `train` ends with a baseline better than the dummy on ROC-AUC, PR-AUC and Brier; its figures."""
    if " train " not in f" {command.text} ":
        return ""
    metrics = printed_metrics(finished.out)
    worse = dummy_not_beaten(metrics)
    # Escalation in a 150 s walk has 10-20 positives: once its ROC-AUC was 0.46 (130 rows, 15
    # positive) on Kafka, noise more than model. That it beats the dummy on every measure is shown
    # on more data by test_notebooks.py and tests/features/test_training.py; here it must train
    # and print its figures against the dummy's; drop-off (hundreds of rows) must beat it on all three.
    if "--task escalation" in command.text:
        worse = []
    assert worse == [], finished.failure(f"{command.text}: the dummy is not beaten on {worse}")
    size = re.search(r"(\d+) rows, (\d+) chats", finished.out)
    shown = ", ".join(
        f"{m.split('_mean')[0]} {metrics.loc[BASELINE, m]:.3f} vs {metrics.loc[DUMMY, m]:.3f}"
        for m in ("roc_auc_mean", "pr_auc_mean", "brier_mean")
    )
    return f" ({size.group(0) if size else '?'}; {shown})"


CHECKS = (printed_records, baseline_beats_the_dummy)


@pytest.mark.timeout(WALK_BOUND)
def test_readme_walk(engine, tmp_path):
    checkout = with_the_venv(copy_of_the_checkout(tmp_path / "checkout", COPIED))
    fresh_terminal = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    ports = {
        name: str(free_port()) for name in ("PORT", "BROKER_PORT", "WORKER_METRICS_PORT", "SINK_METRICS_PORT")
    }
    env = {
        **fresh_terminal,
        **imported_from(checkout),
        **{ENV_PREFIX + k: v for k, v in {**ports, **COMPRESSED, "BROKER_ENGINE": engine}.items()},
        **offline_hugging_face(tmp_path),
    }
    walk = Walk(checkout, env, int(ports["PORT"]), tmp_path)
    try:
        for command in commands(README.read_text()):
            walk.do(command)
        walk.stop_pipeline("(end of the walk)")
    finally:
        walk.abandon_pipeline()
        print(f"\nREADME walk on {engine} (time x{SCALE:g}: {COMPRESSED}):")
        print("\n".join(timing.line() for timing in walk.report))
    datasets = checkout / "data" / "datasets"
    assert {p.name for p in datasets.iterdir()} >= {"messages", "turn_pairs", "conversations"}
