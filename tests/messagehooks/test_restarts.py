"""The restart policy of `up`: doubling delays with a ceiling, and giving up after a burst."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from messagehooks.restarts import Backoff, RestartBudget


def test_delays_double_from_half_a_second_to_ten():
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


@given(
    initial=st.floats(0.01, 5),
    ceiling=st.floats(5, 60),
    factor=st.floats(1, 4),
    attempts=st.integers(1, 40),
)
def test_delays_never_shrink_and_never_pass_the_ceiling(initial, ceiling, factor, attempts):
    backoff = Backoff(initial, ceiling, factor)
    delays = [backoff.next_delay() for _ in range(attempts)]
    assert delays[0] == initial
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert all(d <= ceiling for d in delays)


def test_gives_up_after_more_than_max_restarts_within_the_window():
    budget = RestartBudget(max_restarts=3, window=60)
    budget.started(0)
    assert budget.crashed(1) == 0.5
    assert budget.crashed(2) == 1.0
    assert budget.crashed(3) == 2.0
    assert budget.crashed(4) is None


def test_crashes_older_than_the_window_do_not_count():
    budget = RestartBudget(max_restarts=2, window=10, stable_after=1000)
    for now in (0, 5, 11, 17, 23):  # never more than two crashes within 10 s
        assert budget.crashed(now) is not None
    assert budget.recent_crashes() == 2


def test_a_stable_run_starts_the_backoff_again():
    budget = RestartBudget(max_restarts=10, window=60, stable_after=30)
    budget.started(0)
    assert [budget.crashed(t) for t in (1, 2, 3)] == [0.5, 1.0, 2.0]
    budget.started(5)
    assert budget.crashed(40) == 0.5  # up for 35 s: a new incident


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=60).map(sorted), st.integers(1, 10))
def test_never_more_restarts_than_the_budget_within_any_window(times, max_restarts):
    budget = RestartBudget(max_restarts=max_restarts, window=60)
    restarted: list[float] = []
    for now in times:
        if budget.crashed(now) is not None:
            restarted.append(now)
    for now in restarted:
        assert sum(1 for t in restarted if now - 60 <= t <= now) <= max_restarts
