"""Resuming open conversations from the `messages` table after the stream's state was lost."""

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features import build_dataset
from messagehooks.schema import Message
from streams.resume import MESSAGE_COLUMNS, open_tails, read_open_tails, replay
from streams.sessions import ChatState, Output, SessionSettings, flush, step
from tests.factories import BASE_TS, message
from tests.streams.test_sessions import scenarios

GAP = 30.0
SETTINGS = SessionSettings(conversation_gap=GAP, allowed_lateness=10.0)


def _frame(messages: list[Message], late: frozenset[str] = frozenset()) -> pd.DataFrame:
    """Rows as the `messages` table holds them (the columns a resume reads)."""
    rows = [
        {**{c: getattr(m, c) for c in MESSAGE_COLUMNS if c != "late"}, "late": m.message_id in late}
        for m in messages
    ]
    return pd.DataFrame(rows, columns=MESSAGE_COLUMNS)


class Dataset:
    """What the sink keeps: the first record of each id."""

    def __init__(self) -> None:
        self.pairs: dict[str, object] = {}
        self.conversations: dict[str, object] = {}

    def add(self, out: Output) -> None:
        for pair in out.pairs:
            self.pairs.setdefault(pair.pair_id, pair)
        for conversation in out.conversations:
            self.conversations.setdefault(conversation.conversation_id, conversation)


def _run(
    arrival: list[Message], states: dict[str, ChatState], dataset: Dataset, settings_: SessionSettings
) -> None:
    for m in arrival:
        state, out = step(states.get(m.chat_id), m, settings_)
        states[m.chat_id] = state
        dataset.add(out)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.floats(0, 1))
def test_a_stop_anywhere_then_resume_equals_batch(scenario, where):
    """The state dies at a random point; the messages seen so far are in the table; the rest follow."""
    settings_, arrival = scenario
    cut = int(where * len(arrival))
    dataset = Dataset()
    _run(arrival[:cut], {}, dataset, settings_)  # the first run: its state dies with the broker
    states: dict[str, ChatState] = {}
    tails = open_tails(
        _frame(arrival[:cut]), set(dataset.conversations), conversation_gap=settings_.conversation_gap
    )
    for tail in tails:
        state, outputs = replay(None, tail, settings_)
        states[tail.chat_id] = state
        for out in outputs:
            dataset.add(out)
    _run(arrival[cut:], states, dataset, settings_)
    for state in states.values():
        dataset.add(flush(state, settings_)[1])
    pairs, conversations = build_dataset(
        arrival, conversation_gap=settings_.conversation_gap, context_turns=settings_.context_turns
    )
    assert dataset.pairs == {p.pair_id: p for p in pairs}
    assert dataset.conversations == {c.conversation_id: c for c in conversations}


@settings(max_examples=100, deadline=None)
@given(scenarios(), st.floats(0, 1))
def test_replaying_onto_a_surviving_state_changes_nothing(scenario, where):
    """With a durable changelog the state survives: the resume's replay must be a no-op on it."""
    settings_, arrival = scenario
    cut = int(where * len(arrival))
    dataset = Dataset()
    states: dict[str, ChatState] = {}
    _run(arrival[:cut], states, dataset, settings_)
    encoded = {chat: repr(state) for chat, state in states.items()}
    for tail in open_tails(
        _frame(arrival[:cut]), set(dataset.conversations), conversation_gap=settings_.conversation_gap
    ):
        state, outputs = replay(states.get(tail.chat_id), tail, settings_)
        assert all(not out.pairs and not out.conversations for out in outputs)
        assert repr(state) == encoded[tail.chat_id]


def test_only_the_conversations_after_the_last_closed_one_are_replayed():
    first = [message(chat="7", role="bot", ts=BASE_TS, country="spain", channel_id="c1", body="Hi")]
    second = [
        message(chat="7", role="bot", ts=BASE_TS + GAP + 5, body="Back?"),
        message(chat="7", role="customer", ts=BASE_TS + GAP + 6, body="yes"),
    ]
    other = [message(chat="8", role="bot", ts=BASE_TS, body="Hello")]
    closed = {f"7:{BASE_TS!r}"}
    (tail_7, tail_8) = open_tails(_frame(first + second + other), closed, conversation_gap=GAP)
    assert tail_7.conversation_id == f"7:{BASE_TS + GAP + 5!r}"
    assert [m.message_id for m in tail_7.messages] == [m.message_id for m in second]
    assert (tail_7.country, tail_7.channel_id) == ("spain", "c1")  # carried over, as batch does
    assert (tail_8.chat_id, tail_8.country, len(tail_8.messages)) == ("8", None, 1)
    state, _ = replay(None, tail_7, SETTINGS)
    (pair,) = flush(state, SETTINGS)[1].pairs
    assert (pair.country, pair.channel_id, pair.prompt_text) == ("spain", "c1", "Back?")


def test_late_rows_and_duplicates_are_left_out_and_closed_chats_give_nothing():
    hello = message(chat="5", role="bot", ts=BASE_TS, body="Hi", message_id="a")
    straggler = message(chat="5", role="customer", ts=BASE_TS - 100, body="old", message_id="b")
    (tail,) = open_tails(
        _frame([hello, hello, straggler], late=frozenset({"b"})), set(), conversation_gap=GAP
    )
    assert [m.message_id for m in tail.messages] == ["a"]
    assert open_tails(_frame([hello]), {f"5:{BASE_TS!r}"}, conversation_gap=GAP) == []
    assert open_tails(_frame([]), set(), conversation_gap=GAP) == []


def test_the_tables_are_read_through_the_reader_given():
    """streams never import the dataset: the worker's caller passes the reader (cli/main.py)."""
    first = message(chat="7", role="bot", ts=BASE_TS, body="Hi")
    later = message(chat="7", role="bot", ts=BASE_TS + GAP + 5, body="Back?")
    other = message(chat="8", role="bot", ts=BASE_TS, body="Hello")
    tables = {
        "messages": _frame([first, later, other]),
        "conversations": pd.DataFrame({"conversation_id": [f"7:{BASE_TS!r}"]}),
    }
    asked: list[tuple[str, list[str]]] = []

    def read_table(table: str, columns: list[str]) -> pd.DataFrame | None:
        asked.append((table, columns))
        return tables.get(table)

    (tail_7, tail_8) = read_open_tails(read_table, conversation_gap=GAP)
    assert asked == [("messages", MESSAGE_COLUMNS), ("conversations", ["conversation_id"])]
    assert [m.message_id for m in tail_7.messages] == [later.message_id]
    assert tail_8.chat_id == "8"
    assert [t.chat_id for t in read_open_tails(read_table, conversation_gap=GAP, chats=["8"])] == ["8"]
    del tables["conversations"]  # never written yet: nothing closed
    assert len(read_open_tails(read_table, conversation_gap=GAP)[0].messages) == 2
    assert read_open_tails(lambda table, columns: None, conversation_gap=GAP) == []
