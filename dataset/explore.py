"""What the exploration notebook plots: the stretch of time that holds the traffic, and bins that fit.

A dataset mixes traffic of now with stray old messages (README's fixture is dated 2020), and a
10-minute run has a handful of escalations: plotted naively, the first squeezes 10 minutes of
traffic into one pixel of a 2020-2026 axis and the second spreads two values over 30 bins.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

QUIET_GAP_S = 6 * 3600.0
"""Silence that separates two stretches of traffic (a stray old message is far beyond it)."""


@dataclass(frozen=True, slots=True)
class TimeBin:
    """A bin width for counts over time: a pandas frequency and how a title says it."""

    freq: str
    seconds: float
    label: str


TIME_BINS = (
    TimeBin("1s", 1, "second"),
    TimeBin("10s", 10, "10 s"),
    TimeBin("1min", 60, "minute"),
    TimeBin("5min", 300, "5 min"),
    TimeBin("15min", 900, "15 min"),
    TimeBin("1h", 3600, "hour"),
    TimeBin("6h", 6 * 3600, "6 h"),
    TimeBin("1D", 86400, "day"),
    TimeBin("7D", 7 * 86400, "week"),
)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Messages per bin over the busiest stretch, and how many messages lie outside it."""

    counts: "pd.Series[int]"
    bin: TimeBin
    start: pd.Timestamp
    end: pd.Timestamp
    left_out: int

    def title(self) -> str:
        """The plot's title: the bin, the stretch shown, and what it leaves out."""
        shown = f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"
        title = f"messages per {self.bin.label} (event time), {shown}"
        if self.left_out:
            title += f"\n{self.left_out} message(s) outside this stretch of traffic not shown"
        return title


def time_bin(span_s: float, most: int = 120) -> TimeBin:
    """The narrowest bin that cuts `span_s` seconds into at most `most` bins."""
    for candidate in TIME_BINS:
        if span_s / candidate.seconds <= most:
            return candidate
    return TIME_BINS[-1]


def busiest_stretch(timestamps: "pd.Series[float]", quiet_gap_s: float = QUIET_GAP_S) -> "pd.Series[float]":
    """The epoch seconds of the stretch holding the most messages.

    Stretches are apart by `quiet_gap_s` of silence; the latest wins a tie.
    """
    ordered = timestamps.dropna().sort_values().reset_index(drop=True)
    if ordered.empty:
        return ordered
    stretch = (ordered.diff() > quiet_gap_s).cumsum()
    sizes = stretch.value_counts()
    busiest = max(sizes.index[sizes == sizes.max()])
    kept: pd.Series[float] = ordered[stretch == busiest]
    return kept


def traffic(timestamps: "pd.Series[float]", most_bins: int = 120) -> Traffic:
    """Messages per bin over the busiest stretch of `timestamps` (epoch seconds), empty bins as 0."""
    kept = busiest_stretch(timestamps)
    if kept.empty:
        raise ValueError("no timestamps to plot")
    width = time_bin(float(kept.iloc[-1] - kept.iloc[0]), most_bins)
    times = pd.to_datetime(kept, unit="s", utc=True)
    counts = pd.Series(1, index=pd.DatetimeIndex(times)).resample(width.freq).sum()
    return Traffic(
        counts=counts,
        bin=width,
        start=times.iloc[0],
        end=times.iloc[-1],
        left_out=int(timestamps.notna().sum()) - len(kept),
    )


def histogram_bins(
    values: "pd.Series[float]", most: int = 30
) -> "np.ndarray[tuple[int], np.dtype[np.float64]]":
    """Bin edges that fit `values`: numpy's choice for their number and spread, at most `most`."""
    data = values.dropna().to_numpy(dtype=float)
    edges: np.ndarray[tuple[int], np.dtype[np.float64]] = np.histogram_bin_edges(data, bins="auto")
    if len(edges) - 1 > most:
        edges = np.histogram_bin_edges(data, bins=most)
    return edges


@dataclass(frozen=True, slots=True)
class Tail:
    """Values up to a quantile, for a histogram, and how many lie beyond it (its overflow bar)."""

    kept: "pd.Series[float]"
    limit: float
    beyond: int


def split_tail(values: "pd.Series[float]", quantile: float = 0.99) -> Tail:
    """`values` up to their `quantile`, and the count above it.

    A long tail would squeeze the histogram into one bar; clipping would pile it into a last bin
    that reads as a spike.
    """
    data = values.dropna()
    limit = float(data.quantile(quantile)) if len(data) else 0.0
    return Tail(kept=data[data <= limit], limit=limit, beyond=int((data > limit).sum()))
