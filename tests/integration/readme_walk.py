"""README.md's shell commands as a user reads them: the ```sh blocks of its walked sections, in order.

Pure parsing, no process: tests/integration/test_readme.py runs what this finds. A command is
one line of a block (a trailing ``\\`` continues it); a comment on its line says when or why
(``# 4. after 10 minutes: …``); a whole-line comment right under it is its output
(``# {"accepted":1,…}``, where ``…`` stands for anything).
"""

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

WALKED_SECTIONS = ("Run it", "Your first hour")
"""The README sections (``## `` headings, with their ``### `` subsections) a user runs in order
against a running pipeline. "Test it" (make test, make check) is the test suite itself."""

ELLIPSIS = "…"
"""In an expected output: any text."""


@dataclass(frozen=True)
class Command:
    """One README command: its section, its text as written, its comment and its shown output."""

    section: str
    text: str
    comment: str = ""
    expected: str = ""

    def expects(self, output: str) -> bool:
        """Whether `output` is what README shows under the command (anything, if it shows nothing)."""
        if not self.expected:
            return True
        pattern = ".*".join(re.escape(part) for part in self.expected.split(ELLIPSIS))
        return re.fullmatch(pattern, output.strip(), re.DOTALL) is not None

    def waits_minutes(self) -> float:
        """Minutes after `make run` that README says the command needs (``after 10 minutes``); 0 if none."""
        found = re.search(r"\bafter (\d+(?:\.\d+)?) minutes?\b", self.comment)
        return float(found.group(1)) if found else 0.0


def commands(readme: str, sections: tuple[str, ...] = WALKED_SECTIONS) -> list[Command]:
    """The commands of the ```sh blocks under `sections` of `readme`, in README order."""
    found: list[Command] = []
    section = ""
    block: list[str] | None = None
    for line in readme.splitlines():
        if block is not None:
            if line.startswith("```"):
                found.extend(_block_commands(section, block))
                block = None
            else:
                block.append(line)
        elif line.startswith("## "):
            section = line[3:].strip()
        elif line.startswith("```sh") and section in sections:
            block = []
    return found


def _block_commands(section: str, lines: list[str]) -> list[Command]:
    found: list[Command] = []
    pending = ""
    output_of: Command | None = None
    for line in lines:
        if pending:
            pending += "\n" + line
        elif not line.strip():
            output_of = None
            continue
        elif line.lstrip().startswith("#"):
            if output_of is not None:  # the output of the command above
                found[-1] = output_of = Command(
                    section, output_of.text, output_of.comment, line.lstrip()[1:].strip()
                )
            continue
        else:
            pending = line
        if pending.endswith("\\") or _scan(pending)[1]:  # continued, or a quote still open
            continue
        text, comment = split_comment(pending)
        output_of = Command(section, text.strip(), comment)
        found.append(output_of)
        pending = ""
    return found


def split_comment(line: str) -> tuple[str, str]:
    """`line` and its shell comment: a ``#`` after a blank, outside quotes, starts one."""
    start, _ = _scan(line)
    return (line, "") if start is None else (line[:start].rstrip(), line[start + 1 :].strip())


def _scan(text: str) -> tuple[int | None, str]:
    """Where `text`'s shell comment starts (None: it has none), and the quote left open at its end."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return i, ""
    return None, quote


def make_recipe(checkout: Path, target: str) -> list[str]:
    """The shell lines `make TARGET` runs in `checkout`, its prerequisites taken as up to date.

    Read from make itself (``make -n``), so the walk cannot drift from the Makefile; the
    prerequisites (`venv`: the virtualenv and Kafka's jars) are what the test already runs in.
    """
    makefile = (checkout / "Makefile").read_text()
    rule = re.search(rf"^{re.escape(target)}:([^#\n]*)", makefile, re.MULTILINE)
    if rule is None:
        raise ValueError(f"no rule {target!r} in {checkout / 'Makefile'}")
    old = [arg for name in rule.group(1).split() for arg in ("-o", name)]
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", *old, target],
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line for line in dry.stdout.splitlines() if line.strip()]


BASELINE, DUMMY = "logistic_regression", "dummy_prior"


def printed_metrics(output: str) -> pd.DataFrame:
    """The cross-validation table `messagehooks train` prints (a row per model: roc_auc_mean, …).

    The first one: the test split's table (roc_auc, …) and another task's come after it.
    """
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["roc_auc_mean"])
    header = lines[start].split()
    table = lines[start + 1 : start + 4]
    rows = [line.split() for line in table if line.split()[:1] in ([BASELINE], [DUMMY])]
    return pd.DataFrame({row[0]: [float(v) for v in row[1:]] for row in rows}, index=header).T


def dummy_not_beaten(metrics: pd.DataFrame) -> list[str]:
    """The metrics on which the baseline does not beat the dummy (it should: higher AUCs, lower Brier)."""
    model, dummy = metrics.loc[BASELINE], metrics.loc[DUMMY]
    worse = [m for m in ("roc_auc_mean", "pr_auc_mean") if not model[m] > dummy[m]]
    return worse + (["brier_mean"] if not model["brier_mean"] < dummy["brier_mean"] else [])
