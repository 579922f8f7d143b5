"""The exploration notebook's axes fit the data: a stray 2020 message, ten minutes of traffic."""

import numpy as np
import pandas as pd
import pytest

from dataset.explore import busiest_stretch, histogram_bins, split_tail, time_bin, traffic

NOW = 1_760_000_000.0
FIXTURE_2020 = 1_590_000_000.0  # README's Landbot sample is dated 2020


def ten_minutes_at(rate: float, start: float = NOW) -> pd.Series:
    return pd.Series(start + np.arange(0, 600, 1 / rate))


def test_a_stray_old_message_does_not_stretch_the_time_axis():
    timestamps = pd.concat([pd.Series([FIXTURE_2020]), ten_minutes_at(5)], ignore_index=True)
    result = traffic(timestamps)
    assert result.left_out == 1
    assert result.start == pd.Timestamp(NOW, unit="s", tz="UTC")
    assert (result.end - result.start).total_seconds() < 600
    assert result.bin.label == "10 s"
    assert 55 <= len(result.counts) <= 61
    assert result.counts.sum() == 3000
    assert "1 message(s) outside" in result.title()


def test_quiet_bins_count_zero_and_the_latest_of_equal_stretches_wins():
    day = 86400.0
    first = pd.Series([NOW, NOW + 1, NOW + 2])
    second = pd.Series([NOW + day, NOW + day + 100, NOW + day + 110])
    kept = busiest_stretch(pd.concat([first, second], ignore_index=True))
    assert kept.tolist() == second.tolist()
    result = traffic(second)
    assert result.bin.label == "second"
    assert result.counts.sum() == 3
    assert (result.counts == 0).sum() == len(result.counts) - 3
    assert "outside" not in result.title()


@pytest.mark.parametrize(
    ("span_s", "label"),
    [(30, "second"), (600, "10 s"), (3 * 3600, "5 min"), (4 * 86400, "hour"), (7 * 86400, "6 h")],
)
def test_time_bins_keep_at_most_120_bins(span_s, label):
    assert time_bin(span_s).label == label
    assert span_s / time_bin(span_s).seconds <= 120


def test_two_values_get_two_bins_not_thirty():
    assert len(histogram_bins(pd.Series([40.0, 310.0]))) - 1 <= 2
    many = pd.Series(np.random.default_rng(1).lognormal(3, 1, 5000))
    assert len(histogram_bins(many)) - 1 == 30


def test_the_tail_beyond_the_quantile_is_counted_not_piled_into_the_last_bin():
    latencies = pd.Series([*range(1, 100), 5000.0])
    tail = split_tail(latencies)
    assert tail.beyond == 1
    assert tail.kept.max() <= tail.limit < 5000
    assert len(tail.kept) + tail.beyond == len(latencies)
    assert split_tail(pd.Series([], dtype=float)).beyond == 0
