"""Final labels: in any cut of the stream, what is final is the batch oracle's, and not biased by time."""

import math

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataset import store
from devtools.simulate import SimulationOptions
from features.batch import build_dataset, conversations_frame, pairs_frame
from features.conversation import conversation_id
from features.labels import LABEL_FINAL, conversation_starts, mark_final, select_final
from streams.sessions import ChatState, SessionSettings, flush, step
from tests.factories import BASE_TS, example_chat, message
from tests.features.simulated import START, simulated_messages, stream_cut, write_dataset
from tests.streams.test_sessions import scenarios


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_final_pairs_of_any_cut_are_the_batch_pairs_of_their_conversations(scenario, data):
    session_settings, arrival = scenario
    cut = data.draw(st.integers(0, len(arrival)), label="cut")
    prefix, rest = arrival[:cut], arrival[cut:]
    # The wall clock at the cut may close idle chats, but is never past a message still to come.
    now = min((m.timestamp for m in rest), default=math.inf)
    pairs, conversations = stream_cut(prefix, until=now, settings=session_settings)
    batch_pairs, batch_conversations = build_dataset(
        arrival,
        conversation_gap=session_settings.conversation_gap,
        context_turns=session_settings.context_turns,
    )
    oracle = {pair.pair_id: pair for pair in batch_pairs}
    closed = {c.conversation_id for c in conversations}
    final = mark_final(pairs_frame(pairs), conversations_frame(conversations)).tolist()

    final_pairs = {p.pair_id: p for p, is_final in zip(pairs, final, strict=True) if is_final}
    assert final_pairs == {k: p for k, p in oracle.items() if p.conversation_id in closed}
    # A pair that is not final yet already has its batch label: what is missing is its siblings.
    assert all(oracle[p.pair_id] == p for p in pairs)
    assert set(conversations) <= set(batch_conversations)


@settings(max_examples=200, deadline=None)
@given(scenario=scenarios(), data=st.data())
def test_the_rows_kept_for_training_are_every_conversation_before_the_horizon(scenario, data):
    session_settings, arrival = scenario
    cut = data.draw(st.integers(0, len(arrival)), label="cut")
    now = min((m.timestamp for m in arrival[cut:]), default=math.inf)
    pairs, conversations = stream_cut(arrival[:cut], until=now, settings=session_settings)
    batch_pairs, _ = build_dataset(
        arrival,
        conversation_gap=session_settings.conversation_gap,
        context_turns=session_settings.context_turns,
    )
    selection = select_final("turn_pairs", pairs_frame(pairs), conversations_frame(conversations))

    # Every conversation the cut has a pair of and that started before the horizon is closed,
    # so the kept rows depend on start times only, not on how long a conversation lasted.
    seen = {p.conversation_id for p in pairs}
    oracle = pairs_frame(p for p in batch_pairs if p.conversation_id in seen)
    expected = oracle[conversation_starts(oracle["conversation_id"]) < selection.horizon]
    assert sorted(selection.rows["pair_id"]) == sorted(expected["pair_id"])
    assert selection.rows[LABEL_FINAL].all()
    assert len(selection.rows) + selection.left_out == len(pairs)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_a_conversation_with_pairs_sends_one_of_them_when_it_closes(scenario):
    # Why any conversations version not older than the pairs' gives the same final pairs: a
    # conversation that closes later has a pair the older pairs version cannot hold yet.
    session_settings, arrival = scenario
    states: dict[str, ChatState] = {}
    outputs = []
    for m in arrival:
        states[m.chat_id], out = step(states.get(m.chat_id), m, session_settings)
        outputs.append(out)
    outputs += [flush(state, session_settings)[1] for state in states.values()]
    closes = [(c, out) for out in outputs for c in out.conversations]
    assert closes
    for conversation, out in closes:
        sent_with_it = [p for p in out.pairs if p.conversation_id == conversation.conversation_id]
        assert bool(sent_with_it) == (conversation.pair_count > 0)


@given(
    chat=st.text(min_size=1, max_size=12),
    first_ts=st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4_000_000_000),
)
def test_a_conversation_id_names_its_start(chat, first_ts):
    assert conversation_starts(pd.Series([conversation_id(chat, first_ts)])).tolist() == [float(first_ts)]


def test_a_closed_conversation_with_a_pair_missing_is_not_final():
    pairs, conversations = build_dataset(example_chat("a") + example_chat("b", base=BASE_TS + 5000))
    frame, closed = pairs_frame(pairs), conversations_frame(conversations)

    complete = mark_final(frame, closed)
    assert complete.all()
    assert complete.name == LABEL_FINAL
    # The sink commits the tables separately: chat a's last pair not in the read yet.
    assert mark_final(frame.iloc[1:], closed).tolist() == [False] * 4 + [True] * 5
    assert not mark_final(frame, closed.iloc[1:]).iloc[:5].any()  # chat a not closed


def test_conversation_rows_are_final_and_cut_at_the_horizon():
    first = example_chat("a")
    later = [message(chat="b", role="bot", ts=BASE_TS + 5000 + i, body="hi") for i in range(2)]
    later.append(message(chat="b", ts=BASE_TS + 5003, body="hello"))
    open_chat = [
        message(chat="c", role="bot", ts=BASE_TS + 4000, body="hi"),
        message(chat="c", ts=BASE_TS + 4001, body="yo"),
        message(chat="c", role="bot", ts=BASE_TS + 4002, body="ok"),
        message(chat="c", ts=BASE_TS + 4003, body="fine"),
    ]
    closed_pairs, closed = build_dataset(first + later)
    open_pairs, _ = stream_cut(open_chat, until=BASE_TS + 4003, settings=SessionSettings(allowed_lateness=0))
    assert len(open_pairs) == 1  # bot "hi" -> customer "yo"; the rest waits for the close
    pairs = pairs_frame([*closed_pairs, *open_pairs])

    selection = select_final("conversations", pairs, conversations_frame(closed))
    # c (open, started at +4000) comes before b: only a's conversation is kept.
    assert selection.rows["chat_id"].tolist() == ["a"]
    assert (selection.not_final, selection.after_horizon, selection.horizon) == (0, 1, BASE_TS + 4000)
    assert "1 of conversations that started after the earliest open one" in selection.summary()
    kept = select_final("conversations", pairs, conversations_frame(closed), include_open=True)
    assert len(kept.rows) == 2
    assert kept.rows[LABEL_FINAL].all()
    assert kept.left_out == 0


def test_a_pinned_pairs_version_has_the_same_final_rows_with_any_later_conversations_version(tmp_path):
    root, messages, gap = str(tmp_path), simulated_messages(SimulationOptions(chats=120, seed=4)), 60.0
    early_pairs, early_conversations = stream_cut(
        messages, until=START + 120, settings=SessionSettings(conversation_gap=gap)
    )
    write_dataset(root, early_pairs, early_conversations)
    pairs, conversations = stream_cut(
        messages, until=START + 200, settings=SessionSettings(conversation_gap=gap)
    )
    write_dataset(
        root,
        [p for p in pairs if p not in set(early_pairs)],
        [c for c in conversations if c not in set(early_conversations)],
    )

    pinned = store.load_final("turn_pairs", version=0, root=root)
    at_the_time = select_final(
        "turn_pairs", pairs_frame(early_pairs), conversations_frame(early_conversations)
    )
    assert pinned.versions == {"turn_pairs": 0, "conversations": 1}
    assert sorted(pinned.rows["pair_id"]) == sorted(at_the_time.rows["pair_id"])
    assert (pinned.not_final, pinned.after_horizon) == (at_the_time.not_final, at_the_time.after_horizon)
    assert min(pinned.not_final, pinned.after_horizon, len(pinned.rows)) > 0
    latest = store.load_final("turn_pairs", root=root)
    assert latest.versions == {"turn_pairs": 1, "conversations": 1}
    assert len(latest.rows) > len(pinned.rows)
    assert latest.summary().startswith(f"left out {latest.left_out} of {len(pairs)} turn_pairs rows: ")
    escalation = store.load_final("conversations", root=root)
    assert escalation.versions == {"conversations": 1, "turn_pairs": 1}
    with pytest.raises(store.UnknownTable, match="labels are in"):
        store.load_final("messages", root=root)  # type: ignore[arg-type]  # the wrong table on purpose: the runtime check is under test


def test_without_a_conversations_table_no_pair_is_final(tmp_path):
    root = str(tmp_path)
    pairs, _ = build_dataset(example_chat("a"))
    write_dataset(root, pairs, [])
    selection = store.load_final("turn_pairs", root=root)
    assert (len(selection.rows), selection.not_final) == (0, 5)
    assert selection.versions == {"turn_pairs": 0, "conversations": None}
