"""The live status of `messagehooks up`: a rich panel on a terminal, a log line otherwise.

Figures come from where an operator would look: the ingest's and the worker's Prometheus
endpoints (requests, messages, dead letters, spool depth, open conversations) and the Delta log
(rows and version of the tables). A source that does not answer shows "-", a table whose log
cannot be read is named as corrupt: the panel never stops the pipeline.
"""

import time
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from dataset import store


def scrape(url: str, timeout: float = 0.5) -> dict[str, float]:
    """Every sample of a Prometheus endpoint summed by metric name (labels dropped)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our loopback URL
        text = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + float(sample.value)
    return totals


@dataclass
class Status:
    """One reading of the pipeline."""

    uptime_s: float = 0.0
    requests: float | None = None
    requests_per_s: float | None = None
    messages: float | None = None
    dead_letters: float | None = None
    spool_depth: float | None = None
    open_conversations: float | None = None
    pair_rows: int | None = None
    message_rows: int | None = None
    conversation_rows: int | None = None
    dataset_version: int | None = None
    corrupt_tables: list[str] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    """Standing warnings (an open hook): shown under the panel, whose logs go to files."""
    conversation_gap: str | None = None
    simulator: str | None = None

    def line(self) -> str:
        """The status as one log line."""
        return "status: " + ", ".join(f"{label} {value}" for label, value in self.rows())

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs in display order."""
        return [
            ("requests/s", _fmt(self.requests_per_s, ".1f")),
            ("messages accepted", _fmt(self.messages)),
            ("open conversations", _fmt(self.open_conversations)),
            ("messages in dataset", _fmt(self.message_rows)),
            ("pairs in dataset", _fmt(self.pair_rows)),
            ("conversations in dataset", _fmt(self.conversation_rows)),
            ("turn_pairs version", _fmt(self.dataset_version)),
            ("dead letters", _fmt(self.dead_letters)),
            ("spool depth", _fmt(self.spool_depth)),
            ("conversation gap", self.conversation_gap or "-"),
            ("simulated traffic", self.simulator or "-"),
        ] + [("corrupt table", f"{name} (see the sink's log)") for name in self.corrupt_tables]

    def table(self) -> Table:
        """The status as a rich table (the live panel)."""
        table = Table(
            title=f"messagehooks - up {self.uptime_s:.0f} s",
            show_header=False,
            min_width=44,
            caption="\n".join(f"warning: {w}" for w in self.warnings) or None,
            caption_style="bold yellow",
        )
        table.add_column("what", style="cyan")
        table.add_column("value", justify="right", style="bold")
        for label, value in self.rows():
            table.add_row(label, value)
        return table


@dataclass
class StatusBoard:
    """Reads the sources; remembers the last request count for the rate."""

    ingest_metrics_url: str
    dataset_root: str
    worker_metrics_url: str | None = None
    warnings: tuple[str, ...] = ()
    conversation_gap: str | None = None
    """The gap conversations close after, as `up` runs it (a demo gap while simulating)."""
    simulator: str | None = None
    """What the simulator is doing, set by `up`."""
    started: float = field(default_factory=time.monotonic)
    _last: tuple[float, float] | None = None

    def read(self) -> Status:
        """The current status (sources that fail are left empty)."""
        now = time.monotonic()
        status = Status(
            uptime_s=now - self.started,
            warnings=self.warnings,
            conversation_gap=self.conversation_gap,
            simulator=self.simulator,
        )
        try:
            ingest = scrape(self.ingest_metrics_url)
        except OSError:
            ingest = {}
        if ingest:
            status.requests = ingest.get("messagehooks_requests_total", 0.0)
            status.messages = ingest.get("messagehooks_messages_total", 0.0)
            status.dead_letters = ingest.get("messagehooks_dead_letters_total", 0.0)
            status.spool_depth = ingest.get("messagehooks_spool_depth")
            if self._last is not None and now > self._last[0]:
                status.requests_per_s = (status.requests - self._last[1]) / (now - self._last[0])
            self._last = (now, status.requests)
        if self.worker_metrics_url:
            try:
                worker = scrape(self.worker_metrics_url)
                status.open_conversations = worker.get(OPEN_CONVERSATIONS)
            except OSError:
                pass
        for table in ("messages", "turn_pairs", "conversations"):
            try:
                delta = store.open_table(self.dataset_root, table)
            except store.TableMissing:
                continue
            except store.TableCorrupt:
                status.corrupt_tables.append(table)  # the sink's log names the file and the fix
                continue
            rows = store.row_count(delta)
            if table == "messages":
                status.message_rows = rows
            elif table == "conversations":
                status.conversation_rows = rows
            else:
                status.pair_rows, status.dataset_version = rows, int(delta.version())
        return status


OPEN_CONVERSATIONS = "messagehooks_worker_open_conversations"
"""The worker's gauge of chats with an open conversation."""


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)
