"""IdDigests never forgets an id it was given (a miss is exact); a hit is only a hint."""

from hypothesis import given
from hypothesis import strategies as st

from dataset.id_digests import IdDigests

ids = st.lists(st.text(min_size=1, max_size=40), max_size=200)


@given(loaded=ids, added=ids, probe=st.text(min_size=1, max_size=40))
def test_every_loaded_or_added_id_is_maybe_seen(loaded, added, probe):
    digests = IdDigests(loaded)
    for key in added:
        digests.add(key)
    assert all(digests.maybe_seen(key) for key in loaded + added)
    if probe not in loaded and probe not in added:
        # A 64-bit digest collision among a few hundred ids is astronomically unlikely.
        assert not digests.maybe_seen(probe)


def test_duplicates_in_the_table_are_counted_once():
    assert len(IdDigests(["a", "b", "a"])) == 2
