"""The one late rule (features/lateness.py): `is_late` and, over an arrival order, `late_ids`."""

from hypothesis import given, settings
from hypothesis import strategies as st

from features.lateness import is_late, late_ids
from messagehooks.schema import Message
from tests.factories import BASE_TS, message


def test_is_late_only_past_the_allowed_lateness():
    assert not is_late(100.0, None, 10.0)  # the chat's first message
    assert not is_late(90.0, 100.0, 10.0)  # exactly the lateness older: on time
    assert is_late(89.5, 100.0, 10.0)
    assert not is_late(120.0, 100.0, 0.0)


def _late_oracle(arrivals: list[Message], allowed_lateness: float) -> set[tuple[str, str]]:
    """Plainly: a first arrival is late iff an earlier first arrival of its chat is newer by > L."""
    late = set()
    first_arrivals: list[Message] = []
    seen = set()
    for m in arrivals:
        if (m.chat_id, m.message_id) in seen:
            continue
        seen.add((m.chat_id, m.message_id))
        earlier = [e.timestamp for e in first_arrivals if e.chat_id == m.chat_id]
        if earlier and max(earlier) - m.timestamp > allowed_lateness:
            late.add((m.chat_id, m.message_id))
        first_arrivals.append(m)
    return late


@st.composite
def _arrivals(draw: st.DrawFn) -> list[Message]:
    chats = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=30))
    # Ids repeat across chats (i // 3): a message is known by (chat, id), never by its id alone.
    messages = [
        message(chat=chat, ts=BASE_TS + draw(st.integers(0, 60)), message_id=f"m-{i // 3}")
        for i, chat in enumerate(chats)
    ]
    messages = list({(m.chat_id, m.message_id): m for m in messages}.values())
    repeats = draw(st.lists(st.sampled_from(messages), max_size=10))
    return draw(st.permutations(messages + repeats))


@settings(max_examples=300, deadline=None)
@given(arrivals=_arrivals(), allowed_lateness=st.integers(0, 30))
def test_late_ids_flags_exactly_messages_older_than_the_newest_earlier_arrival(arrivals, allowed_lateness):
    assert late_ids(arrivals, float(allowed_lateness)) == _late_oracle(arrivals, float(allowed_lateness))


@settings(max_examples=100, deadline=None)
@given(
    timestamps=st.lists(st.integers(0, 100), min_size=1, max_size=20, unique=True),
    allowed_lateness=st.integers(0, 30),
)
def test_a_repeat_is_judged_by_its_first_arrival_only(timestamps, allowed_lateness):
    messages = [message(chat="r", ts=BASE_TS + t, message_id=f"r{i}") for i, t in enumerate(timestamps)]
    oldest = min(messages, key=lambda m: m.timestamp)
    # the oldest arrives first (never late), then everything, then the oldest again: still not late
    arrivals = [oldest, *messages, oldest]
    assert ("r", oldest.message_id) not in late_ids(arrivals, float(allowed_lateness))
    # in time order nothing is late
    assert late_ids(sorted(messages, key=lambda m: m.timestamp), float(allowed_lateness)) == set()


def test_late_ids_known_example():
    ms = [
        message(chat="x", ts=BASE_TS + 100, message_id="n"),
        message(chat="x", ts=BASE_TS + 90, message_id="on-the-edge"),  # exactly L older: not late
        message(chat="x", ts=BASE_TS + 89.5, message_id="late"),
        message(chat="y", ts=BASE_TS, message_id="other-chat"),
    ]
    assert late_ids([*ms, ms[2]], 10.0) == {("x", "late")}
