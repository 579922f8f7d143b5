"""A Delta table whose log cannot be read: find the file at fault and say what to do, in one line.

deltalake reports a torn or garbled log file as a bare ``DeltaError`` ("Json error: Truncated
record ...") that names neither the table nor the file. `table_error` turns any error met while
opening a table into `TableCorrupt`, after scanning the table's ``_delta_log`` (local tables
only) for the commit that does not parse, the checkpoint that does not read, or the commit that
is missing. docs/operations.md ("Corrupt state") explains the remedies the message names.
"""

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from messagehooks.errors import BadLogFile, TableCorrupt

_COMMIT = re.compile(r"^(\d{20})\.json$")
_CHECKPOINT = re.compile(r"^(\d{20})\.checkpoint(\.[^.]+)*\.parquet$")
_DETAIL_CHARS = 120


def scan_log(table_dir: Path) -> list[BadLogFile]:
    """Every unusable file of the table's ``_delta_log``, oldest version first.

    Checks that `_last_checkpoint` is a JSON object, that each checkpoint reads as Parquet,
    that each line of each commit parses as a JSON object, that the first commit defines the
    table when no checkpoint does, and that the commits after the newest checkpoint have no gap.
    """
    log = table_dir / "_delta_log"
    if not log.is_dir():
        return []
    bad: list[BadLogFile] = []
    last_checkpoint = log / "_last_checkpoint"
    if last_checkpoint.exists():
        problem = _json_problem(last_checkpoint, whole=True)
        if problem:
            bad.append(BadLogFile(last_checkpoint, problem))
    commits: dict[int, Path] = {}
    checkpoints: list[int] = []
    for path in sorted(log.iterdir()):
        if match := _COMMIT.match(path.name):
            version = int(match.group(1))
            commits[version] = path
            if problem := _json_problem(path, whole=False):
                bad.append(BadLogFile(path, problem, version))
        elif match := _CHECKPOINT.match(path.name):
            version = int(match.group(1))
            if problem := _parquet_problem(path):
                bad.append(BadLogFile(path, problem, version))
            else:
                checkpoints.append(version)
    if not checkpoints and 0 in commits and not any(b.version == 0 for b in bad):
        bad += _without_table_definition(commits[0])
    bad += _gaps(log, commits, max(checkpoints, default=None))
    return sorted(bad, key=lambda b: (-1 if b.version is None else b.version, b.path.name))


def table_error(uri: str, table: str, exc: BaseException) -> TableCorrupt:
    """The one-line error for `exc`, raised by deltalake while opening `table` at `uri`."""
    cause = _first_line(str(exc)) or type(exc).__name__
    local = _local_dir(uri)
    bad = scan_log(local) if local is not None else []
    rebuild = (
        f"or move {uri} aside and rebuild it from the topics (the sink re-reads them; "
        "`messagehooks backfill --from-topic landbot.raw`) - docs/operations.md, Corrupt state"
    )
    if not bad:
        return TableCorrupt(
            f"Delta table {table!r} at {uri} cannot be read ({cause}); restore its _delta_log "
            f"from a backup, {rebuild}",
            bad,
        )
    first = bad[0]
    more = f" (and {len(bad) - 1} more bad log file(s))" if len(bad) > 1 else ""
    fix = f"restore it from a backup, {rebuild}"
    if len(bad) == 1 and local is not None and first.version is not None:
        commits = _commit_versions(local)
        if _COMMIT.match(first.path.name) and first.version == max(commits) and first.version > 0:
            fix = (
                "it is the newest commit: move it out of _delta_log to roll the table back to "
                f"version {first.version - 1}, or {fix}"
            )
        elif _CHECKPOINT.match(first.path.name) and commits.issuperset(range(first.version + 1)):
            fix = (
                "every commit it summarises is still there: move it and _last_checkpoint out of "
                f"_delta_log and the table reads from them, or {fix}"
            )
    return TableCorrupt(f"Delta table {table!r} is corrupt: {first.path} {first.problem}{more}; {fix}", bad)


def _commit_versions(table_dir: Path) -> set[int]:
    return {int(m.group(1)) for p in (table_dir / "_delta_log").iterdir() if (m := _COMMIT.match(p.name))}


def _json_problem(path: Path, *, whole: bool) -> str | None:
    """Why `path` is not JSON (a whole document, or one object per line), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot be read ({_first_line(str(exc))})"
    lines = [text] if whole else text.splitlines()
    if not text.strip():
        return "is empty"
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            where = f"column {exc.colno}" if whole else f"line {number}, column {exc.colno}"
            return f"does not parse as JSON ({where}: {exc.msg.removesuffix(' starting at')})"
        if not isinstance(value, dict):
            return f"holds a JSON {type(value).__name__} where an object belongs (line {number})"
    return None


def _without_table_definition(first_commit: Path) -> list[BadLogFile]:
    """The first commit, if it lacks the protocol or metaData action (a commit cut at a line end)."""
    actions = {
        key for line in first_commit.read_text().splitlines() if line.strip() for key in json.loads(line)
    }
    missing = [name for name in ("protocol", "metaData") if name not in actions]
    if not missing:
        return []
    return [BadLogFile(first_commit, f"lacks the table's {' and '.join(missing)} (cut short?)", 0)]


def _parquet_problem(path: Path) -> str | None:
    """Why the checkpoint `path` cannot be read as Parquet, or None."""
    try:
        pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        text = re.sub(r"^Could not open Parquet input source '[^']*': ", "", str(exc))
        detail = _first_line(text.replace(str(path), path.name))
        return f"does not read as a Parquet checkpoint ({detail})"
    return None


def _gaps(log: Path, commits: dict[int, Path], checkpoint: int | None) -> list[BadLogFile]:
    """Commits missing between the newest readable checkpoint (or version 0) and the newest commit."""
    if not commits:
        return []
    start = checkpoint + 1 if checkpoint is not None else min(commits)
    missing = [v for v in range(start, max(commits)) if v not in commits]
    return [BadLogFile(log / f"{v:020d}.json", "is missing (later commits exist)", v) for v in missing]


def _local_dir(uri: str) -> Path | None:
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    elif "://" in uri:
        return None  # an object store: not scanned
    return Path(uri)


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 3] + "..."
