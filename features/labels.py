"""Which rows of a dataset read carry labels a model can trust (docs/dataset.md, "Final labels").

The stream writes an answered pair as soon as its response turn is sealed, but the unanswered
pair of a conversation (its drop-off) only when the conversation closes, a conversation gap of
silence later. A read taken while conversations are open therefore holds their answered pairs
without their unanswered ones, and learning from it selects on the label: five minutes into a
run, every pair of `turn_pairs` was answered, where the simulator drops 10-35 % of customers at
each question. No pair record ever changes; what is not final before the close is the *set* of
a conversation's pairs.

- A `turn_pairs` row's label is final when its conversation has a `conversations` row and the
  read holds all `pair_count` pairs of it. The count makes the join exact whatever versions of
  the two tables are read (the sink commits them separately), as long as the conversations
  version is not older than the pairs one: every conversation with pairs emits at least one of
  them when it closes, so the pairs of a conversation that closed after the pairs version are
  incomplete there.
- A `conversations` row's labels are always final: it is written when its conversation closes.

Training goes one step further and keeps only final rows of conversations that started before
the *horizon*, the start of the earliest conversation not final in the read: short
conversations close first, and the short ones are the drop-offs and the chats that never
reached an agent, so the closed conversations near the end of a read are a biased sample. Before
the horizon every conversation the read has pairs of is closed, and what is kept depends on
start times only.
"""

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pandas as pd

LABEL_FINAL = "label_final"
"""The column of a selection's rows that says whether the row's label is final."""

LabelledTable = Literal["turn_pairs", "conversations"]
PAIR_COLUMNS = ["pair_id", "conversation_id"]
"""What `select_final` reads of `turn_pairs` to select `conversations` rows."""
CONVERSATION_COLUMNS = ["conversation_id", "pair_count", "start_ts"]
"""What `select_final` reads of `conversations` to select `turn_pairs` rows."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The rows a model may learn from, and how many were left out, and why.

    Attributes:
        table: The table the rows are of.
        rows: The rows kept, with a `label_final` column (all of them when `include_open`).
        not_final: Rows whose conversation is still open (or whose pairs are not all in the read).
        after_horizon: Final rows of conversations that started at or after `horizon`.
        horizon: Start (epoch seconds) of the earliest conversation not final; inf if none.
        include_open: Nothing was left out; the counts say what would have been.
        versions: The table versions read, by table name (None: the table does not exist yet).
    """

    table: LabelledTable
    rows: pd.DataFrame
    not_final: int
    after_horizon: int
    horizon: float
    include_open: bool = False
    versions: dict[str, int | None] = field(default_factory=dict)

    @property
    def left_out(self) -> int:
        """How many rows of the read are not in `rows`."""
        return 0 if self.include_open else self.not_final + self.after_horizon

    def summary(self) -> str:
        """One line for humans: what was left out (or kept although unsettled) and why."""
        unsettled = self.not_final + self.after_horizon
        if unsettled == 0:
            return f"every {self.table} row read has a final label"
        reasons = []
        if self.not_final:
            reasons.append(f"{self.not_final} whose conversation is still open (label not final)")
        if self.after_horizon:
            since = datetime.fromtimestamp(self.horizon, tz=UTC).isoformat(timespec="seconds")
            reasons.append(
                f"{self.after_horizon} of conversations that started after the earliest open one "
                f"({since}; closed early, so biased towards short conversations)"
            )
        total = len(self.rows) + (0 if self.include_open else unsettled)
        head = f"kept all {total}" if self.include_open else f"left out {unsettled} of {total}"
        return f"{head} {self.table} rows: " + ", ".join(reasons)


def conversation_starts(conversation_ids: "pd.Series[str]") -> "pd.Series[float]":
    """The first-message times conversation ids name (`features.conversation.conversation_id`)."""
    return conversation_ids.astype(str).str.rsplit(":", n=1).str[1].astype(float)


def mark_final(pairs: pd.DataFrame, conversations: pd.DataFrame) -> "pd.Series[bool]":
    """Per row of `pairs`: its conversation is in `conversations` and `pairs` holds all its pairs.

    Args:
        pairs: Rows of `turn_pairs` (at least `pair_id`, `conversation_id`).
        conversations: Rows of `conversations` (at least `conversation_id`, `pair_count`), of a
            version not older than the pairs'.
    """
    expected = pairs["conversation_id"].map(
        conversations.drop_duplicates("conversation_id").set_index("conversation_id")["pair_count"]
    )
    present = pairs.groupby("conversation_id")["pair_id"].transform("nunique")
    return (expected == present).astype(bool).rename(LABEL_FINAL)


def horizon(pairs: pd.DataFrame, final: "pd.Series[bool]") -> float:
    """The start of the earliest conversation whose pairs are not final (inf: there is none)."""
    unsettled = pairs.loc[~final, "conversation_id"]
    return float(conversation_starts(unsettled).min()) if len(unsettled) else math.inf


def select_final(
    table: LabelledTable,
    pairs: pd.DataFrame,
    conversations: pd.DataFrame,
    *,
    include_open: bool = False,
) -> Selection:
    """The rows of `table` whose label is final and whose conversation started before the horizon.

    Args:
        table: Which of the two frames to select rows of.
        pairs: The read's `turn_pairs` rows (all columns when `table` is "turn_pairs").
        conversations: The read's `conversations` rows (all columns when it is "conversations").
        include_open: Keep every row (marked), only count what would have been left out.
    """
    final = mark_final(pairs, conversations)
    cut = horizon(pairs, final)
    if table == "turn_pairs":
        rows = pairs.assign(**{LABEL_FINAL: final})
        starts = conversation_starts(rows["conversation_id"])
    else:
        rows = conversations.assign(**{LABEL_FINAL: True})
        starts = rows["start_ts"].astype(float)
    settled = rows[LABEL_FINAL] & (starts < cut)
    return Selection(
        table=table,
        rows=rows if include_open else rows[settled].reset_index(drop=True),
        not_final=int((~rows[LABEL_FINAL]).sum()),
        after_horizon=int((rows[LABEL_FINAL] & ~settled).sum()),
        horizon=cut,
        include_open=include_open,
    )
