from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.splits import SPLITS, SplitSpec, split_of, splits_of
from messagehooks.errors import ConfigError
from messagehooks.settings import load_settings
from messagehooks.variables import parse_proportions

chat_ids = st.text(min_size=1, max_size=40)
seeds = st.text(min_size=1, max_size=20)


@given(chat_ids, seeds)
def test_a_chats_split_depends_only_on_its_id_and_the_seed(chat_id, seed):
    spec = SplitSpec(seed=seed)
    assert split_of(chat_id, spec) == split_of(chat_id, SplitSpec(seed=seed)) in SPLITS


@given(st.lists(chat_ids, min_size=1, max_size=50), seeds)
def test_every_row_of_a_chat_gets_the_same_split_in_any_table_order(ids, seed):
    spec = SplitSpec(seed=seed)
    rows = ids + list(reversed(ids))  # the same chats as another table holds them
    assigned = splits_of(rows, spec)
    by_chat = {}
    for chat_id, split in zip(rows, assigned, strict=True):
        assert by_chat.setdefault(chat_id, split) == split
    assert assigned == [split_of(chat_id, spec) for chat_id in rows]


@given(chat_ids, seeds, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_growing_one_share_only_moves_chats_into_it(chat_id, seed, first, second):
    """A chat leaves test only for validation or train when the earlier shares grow (stable cut points)."""
    small, large = sorted((first, second))
    before = split_of(chat_id, SplitSpec(seed, (small, 0.0, 1.0 - small)))
    after = split_of(chat_id, SplitSpec(seed, (large, 0.0, 1.0 - large)))
    assert before == after or (before, after) == ("test", "train")


def test_proportions_hold_over_many_chats():
    spec = SplitSpec(proportions=(0.7, 0.2, 0.1))
    counts = Counter(splits_of((f"chat-{n}" for n in range(20_000)), spec))
    assert counts["train"] / 20_000 == pytest.approx(0.7, abs=0.015)
    assert counts["validation"] / 20_000 == pytest.approx(0.2, abs=0.015)
    assert counts["test"] / 20_000 == pytest.approx(0.1, abs=0.015)


def test_another_seed_is_another_assignment():
    ids = [f"chat-{n}" for n in range(1000)]
    first, second = splits_of(ids, SplitSpec(seed="a")), splits_of(ids, SplitSpec(seed="b"))
    assert sum(a != b for a, b in zip(first, second, strict=True)) > 100


def test_a_known_assignment_does_not_change_between_releases():
    """Pinned values: a change of the hash would silently reshuffle every published split."""
    not_train = {n: split_of(f"chat-{n}") for n in range(60) if split_of(f"chat-{n}") != "train"}
    assert not_train == {
        14: "test",
        15: "test",
        16: "test",
        27: "validation",
        33: "validation",
        48: "validation",
        54: "validation",
    }


@pytest.mark.parametrize(
    ("text", "expected"), [("0.8,0.1,0.1", (0.8, 0.1, 0.1)), (" 1, 0 ,0", (1.0, 0.0, 0.0))]
)
def test_proportions_parse(text, expected):
    assert parse_proportions(text) == expected


@pytest.mark.parametrize("text", ["0.8,0.2", "a,b,c", "0.5,0.5,0.5", "-0.1,0.6,0.5", ""])
def test_bad_proportions_are_a_config_error(text):
    with pytest.raises(ConfigError, match="split proportions"):
        SplitSpec(proportions=parse_proportions(text))
    with pytest.raises(ConfigError, match="split proportions"):
        load_settings({"MESSAGEHOOKS_SPLIT_PROPORTIONS": text or ","})


def test_the_split_comes_from_the_settings():
    assert SplitSpec.from_settings(load_settings({})) == SplitSpec()
    spec = SplitSpec.from_settings(
        load_settings({"MESSAGEHOOKS_SPLIT_SEED": "s2", "MESSAGEHOOKS_SPLIT_PROPORTIONS": "0.6, 0.2, 0.2"})
    )
    assert spec == SplitSpec("s2", (0.6, 0.2, 0.2))
    with pytest.raises(ConfigError, match="SPLIT_SEED must not be empty"):
        load_settings({"MESSAGEHOOKS_SPLIT_SEED": " "})
