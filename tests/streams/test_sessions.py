from collections import defaultdict
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import TurnPair, build_dataset
from messagehooks.schema import Message, Role
from streams.sessions import (
    ChatState,
    SessionSettings,
    close_idle,
    flush,
    is_open,
    new_state,
    step,
)
from tests.factories import BASE_TS, event, example_chat, message

LATENESS = 10.0
QUARTER = 0.25  # timestamps are multiples of 1/4 s: exact float arithmetic at epoch scale

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ChatState)

# Message templates: (type, role, body, payload, options, action).
_KINDS: dict[str, tuple[str, Role, str | None, str | None, tuple[str, ...], str | None]] = {
    "bot_text": ("text", "bot", "Hi! How can I help?", None, (), None),
    "bot_dialog": ("dialog", "bot", "Pick one", None, ("Pricing", "Support"), None),
    "bot_image": ("image", "bot", None, None, (), None),
    "bot_iframe": ("iframe", "bot", "", None, (), None),
    "button": ("button", "customer", "Support", "$1", (), None),
    "customer_text": ("text", "customer", "my order 1234?", None, (), None),
    "agent_text": ("text", "agent", "Hi, I'm Ana: ana@example.com", None, (), None),
    "sys_text": ("text", "sys", "Ana joined", None, (), None),
    "unknown": ("weird", "unknown", "??", None, (), None),
    "assign": ("event", "sys", None, None, (), "assign"),
    "unassign": ("event", "sys", None, None, (), "unassign"),
    "agent_event": ("event", "agent", None, None, (), "note"),
}
_SEGMENTS = [
    ["bot_text", "bot_dialog", "button"],
    ["customer_text"],
    ["customer_text", "customer_text", "customer_text"],
    ["bot_text"],
    ["bot_image", "bot_iframe", "bot_text"],
    ["assign", "agent_text", "customer_text", "agent_text", "unassign"],
    ["customer_text", "assign", "sys_text", "agent_text"],
    ["agent_text", "bot_text"],
    ["sys_text"],
    ["unknown", "agent_event"],
    ["unassign"],
]


# Built once: a strategy built inside the draw loop is built and validated again at every draw,
# which was most of the property tests' time.
_PAUSES = st.sampled_from(["burst", "short", "exact_gap", "split"])
_SEGMENT = st.sampled_from(_SEGMENTS)
# 0 makes ties (ordered by seq, then id); 40 is exactly the allowed lateness.
_STEP = st.sampled_from([0, 0, 1, 40]) | st.integers(0, 60)
_SEQ = st.none() | st.integers(0, 3)
_COUNTRY = st.sampled_from([None, None, "spain", "france"])
_CHANNEL = st.sampled_from([None, "761536"])


@st.composite
def chat_messages(draw, chat, gap):
    ts = BASE_TS + draw(st.integers(0, 400)) * QUARTER
    messages: list[Message] = []
    for _ in range(draw(st.integers(1, 10))):
        pause = draw(_PAUSES)
        if pause == "short":
            ts += draw(st.integers(0, 480)) * QUARTER
        elif pause == "exact_gap":
            ts += gap
        elif pause == "split":
            ts += gap + draw(st.integers(1, 40)) * QUARTER
        for kind in draw(_SEGMENT):
            ts += draw(_STEP) * QUARTER
            type_, role, body, payload, options, action = _KINDS[kind]
            messages.append(
                message(
                    chat=chat,
                    type=type_,
                    role=role,
                    ts=ts,
                    body=body,
                    payload=payload,
                    options=options,
                    action=action,
                    seq=draw(_SEQ),
                    message_id=f"{chat}-{len(messages)}",
                    country=draw(_COUNTRY),
                    channel_id=draw(_CHANNEL),
                )
            )
    return messages


# Delays in quarter seconds: the extremes (on time, exactly the allowed lateness) are the
# interesting cases, so they are drawn often.
_MAX_DELAY = int(LATENESS / QUARTER)
_DELAYS = st.one_of(st.just(0), st.just(_MAX_DELAY), st.integers(0, _MAX_DELAY))


@st.composite
def scenarios(draw):
    """Messages of 1-3 chats, with duplicates, in an arrival order within the lateness bound.

    Each copy arrives at `ts + delay` with 0 <= delay <= LATENESS, so every message's ts is at
    least the largest ts that arrived before it minus LATENESS.
    """
    gap = draw(st.sampled_from([30.0, 120.0]))
    settings_ = SessionSettings(
        conversation_gap=gap,
        allowed_lateness=LATENESS,
        context_turns=draw(st.integers(0, 3)),
        dedup_window=draw(st.sampled_from([1, 3, 1000])),
    )
    messages = []
    for chat in draw(st.sampled_from([["1"], ["1", "2"], ["1", "2", "30"]])):
        messages.extend(draw(chat_messages(chat, gap)))
    copies = messages + [messages[i] for i in draw(st.lists(st.integers(0, len(messages) - 1), max_size=6))]
    delays = draw(
        st.lists(
            st.tuples(_DELAYS, st.integers(0, 1000)),
            min_size=len(copies),
            max_size=len(copies),
        )
    )
    arrival = [
        m
        for _, _, m in sorted(
            ((m.timestamp + d * QUARTER, tie, m) for m, (d, tie) in zip(copies, delays, strict=True)),
            key=lambda item: (item[0], item[1]),
        )
    ]
    return settings_, arrival


def within_bound(arrival: list[Message]) -> bool:
    max_ts: dict[str, float] = {}
    for m in arrival:
        seen = max_ts.get(m.chat_id)
        if seen is not None and m.timestamp < seen - LATENESS:
            return False
        max_ts[m.chat_id] = max(m.timestamp, seen if seen is not None else m.timestamp)
    return True


ByChat = dict[str, list[Any]]


def run_stream(
    arrival: list[Message], settings_: SessionSettings, *, round_trip: bool = False
) -> tuple[ByChat, ByChat, list[tuple[bool, bool]]]:
    states: dict[str, ChatState] = {}
    pairs: ByChat = defaultdict(list)
    conversations: ByChat = defaultdict(list)
    flags = []
    for m in arrival:
        state, out = step(states.get(m.chat_id), m, settings_)
        states[m.chat_id] = _DECODER.decode(_ENCODER.encode(state)) if round_trip else state
        pairs[m.chat_id].extend(out.pairs)
        conversations[m.chat_id].extend(out.conversations)
        flags.append((out.duplicate, out.late))
    for chat, state in states.items():
        _, out = flush(state, settings_)
        pairs[chat].extend(out.pairs)
        conversations[chat].extend(out.conversations)
    return _non_empty(pairs), _non_empty(conversations), flags


def run_batch(messages: list[Message], settings_: SessionSettings) -> tuple[ByChat, ByChat]:
    pairs, conversations = build_dataset(
        messages,
        conversation_gap=settings_.conversation_gap,
        context_turns=settings_.context_turns,
    )
    by_chat_pairs: ByChat = defaultdict(list)
    by_chat_conversations: ByChat = defaultdict(list)
    for p in pairs:
        by_chat_pairs[p.chat_id].append(p)
    for c in conversations:
        by_chat_conversations[c.chat_id].append(c)
    return _non_empty(by_chat_pairs), _non_empty(by_chat_conversations)


def _non_empty(by_chat: ByChat) -> ByChat:
    return {chat: records for chat, records in by_chat.items() if records}


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_stream_equals_batch_for_any_arrival_within_lateness(scenario):
    settings_, arrival = scenario
    assert within_bound(arrival)

    stream_pairs, stream_conversations, flags = run_stream(arrival, settings_)
    batch_pairs, batch_conversations = run_batch(arrival, settings_)

    assert stream_pairs == batch_pairs
    assert stream_conversations == batch_conversations
    assert not any(late for _, late in flags)
    assert sum(duplicate for duplicate, _ in flags) == len(arrival) - len({m.message_id for m in arrival})


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_state_json_round_trip_between_every_step_changes_nothing(scenario):
    settings_, arrival = scenario

    assert run_stream(arrival, settings_, round_trip=True) == run_stream(arrival, settings_)


def test_straggler_past_the_bound_is_late_and_not_paired():
    cfg = SessionSettings(allowed_lateness=LATENESS)
    state, _ = step(None, message(role="bot", ts=BASE_TS, body="q?"), cfg)
    state, _ = step(state, message(ts=BASE_TS + 100, body="answer", message_id="a"), cfg)
    before = _ENCODER.encode(state)

    state, out = step(state, message(ts=BASE_TS + 50, body="straggler", message_id="s"), cfg)

    assert (out.late, out.duplicate, out.pairs) == (True, False, ())
    assert _ENCODER.encode(state) == before
    _, out = flush(state, cfg)
    assert [(p.prompt_text, p.response_text) for p in out.pairs] == [("q?", "answer")]


def test_message_ordering_before_flushed_ones_is_late():
    cfg = SessionSettings()
    state, _ = step(None, message(ts=BASE_TS + 5), cfg)
    state, _ = flush(state, cfg)

    state, out = step(state, message(ts=BASE_TS + 1), cfg)  # within lateness, but sealed past

    assert out.late
    assert not is_open(state)


def test_duplicates_are_idempotent():
    cfg = SessionSettings(allowed_lateness=LATENESS)
    once: ChatState | None = None
    twice: ChatState | None = None
    once_pairs: list[TurnPair] = []
    twice_pairs: list[TurnPair] = []
    for m in example_chat():
        once, out = step(once, m, cfg)
        once_pairs.extend(out.pairs)
        twice, out = step(twice, m, cfg)
        twice_pairs.extend(out.pairs)
        snapshot = _ENCODER.encode(twice)
        twice, out = step(twice, m, cfg)
        assert out.duplicate
        assert (out.pairs, out.conversations, out.turns) == ((), (), ())
        assert _ENCODER.encode(twice) == snapshot
    assert once_pairs == twice_pairs
    assert once is not None
    assert twice is not None
    assert flush(once, cfg)[1] == flush(twice, cfg)[1]


def test_pairs_are_emitted_once_final_and_conversation_on_gap():
    cfg = SessionSettings(allowed_lateness=LATENESS, conversation_gap=1800)
    msgs = [
        message(role="bot", ts=BASE_TS, body="hi"),
        message(ts=BASE_TS + 1, body="hello"),
        message(role="bot", ts=BASE_TS + 30, body="how can I help?"),
        message(ts=BASE_TS + 45, body="refund"),
        message(ts=BASE_TS + 5000, body="anyone?"),
        message(ts=BASE_TS + 5020, body="hello?"),
    ]
    emitted = []
    state: ChatState | None = None
    for m in msgs:
        state, out = step(state, m, cfg)
        emitted.append(([p.pair_index for p in out.pairs], len(out.conversations)))

    # The customer turn (t+1) is final only once the bot message at t+30 is sealed (at t+45).
    # The gap closes the first conversation once t+45 is sealed (at t+5020).
    assert emitted == [([], 0), ([], 0), ([], 0), ([0], 0), ([1], 0), ([2], 1)]
    assert state is not None
    state, out = flush(state, cfg)
    assert ([p.pair_index for p in out.pairs], len(out.conversations)) == ([], 1)


def test_close_idle_closes_only_after_the_gap():
    cfg = SessionSettings(conversation_gap=1800)
    state, _ = step(None, message(role="bot", ts=BASE_TS, body="still there?"), cfg)

    state, out = close_idle(state, BASE_TS + 1800, cfg)
    assert out.conversations == ()
    assert is_open(state)

    state, out = close_idle(state, BASE_TS + 1801, cfg)
    assert [p.answered for p in out.pairs] == [False]
    assert len(out.conversations) == 1
    assert not is_open(state)
    assert close_idle(state, BASE_TS + 9999, cfg)[1].conversations == ()


def test_state_keeps_no_raw_bytes_and_round_trips():
    cfg = SessionSettings()
    state = new_state("42")
    m = msgspec.structs.replace(message(), raw=msgspec.Raw(b'{"big": "RAW-MARKER"}'))
    state, _ = step(state, m, cfg)
    state, _ = step(state, event(action="assign", ts=BASE_TS + 1), cfg)

    assert b"RAW-MARKER" not in _ENCODER.encode(state)
    assert _DECODER.decode(_ENCODER.encode(state)) == state


def test_step_rejects_another_chat_and_settings_are_validated():
    state, _ = step(None, message(chat="1"), SessionSettings())
    with pytest.raises(ValueError, match="is for chat '2'"):
        step(state, message(chat="2"), SessionSettings())
    with pytest.raises(ValueError, match="allowed_lateness"):
        SessionSettings(allowed_lateness=-1)
    with pytest.raises(ValueError, match="conversation_gap"):
        SessionSettings(conversation_gap=0)
    with pytest.raises(ValueError, match="context_turns"):
        SessionSettings(context_turns=-1)
    with pytest.raises(ValueError, match="dedup_window"):
        SessionSettings(dedup_window=0)


def test_message_exactly_at_the_lateness_bound_is_placed_in_order():
    cfg = SessionSettings(allowed_lateness=LATENESS)
    bot = message(role="bot", ts=BASE_TS, body="q?", seq=2, message_id="b")
    arrival = [
        bot,
        message(ts=BASE_TS + LATENESS, body="a", message_id="c"),
        # Same ts as the bot message, exactly LATENESS behind the newest, ordered before it.
        message(ts=BASE_TS, body="first", seq=1, message_id="a"),
    ]

    stream_pairs, _, flags = run_stream(arrival, cfg)

    assert flags == [(False, False)] * 3
    assert stream_pairs == run_batch(arrival, cfg)[0]
    assert [p.prompt_text for p in stream_pairs["42"]] == ["first", "q?"]


def test_docs_example_emission_points():
    cfg = SessionSettings()
    state: ChatState | None = None
    emitted = {}
    for m in example_chat():
        state, out = step(state, m, cfg)
        emitted[m.message_id] = [p.pair_index for p in out.pairs]
    assert state is not None
    _, out = flush(state, cfg)

    # Pair 0 (bot -> "Support") is final once e4 (T+6) is sealed: e5 (T+20) arrives.
    assert emitted == {
        "e1": [],
        "e2": [],
        "e3": [],
        "e4": [],
        "e5": [0],
        "e6": [],
        "e7": [],
        "e8": [],
        "e9": [1],  # seals e5 (T+20): the bot turn "Describe..." is final
        "e10": [],
        "e11": [2],  # seals e8 (T+30): the customer turn is final
    }
    # The agent turn is final only at the close: its pair and the unanswered one.
    assert [p.pair_index for p in out.pairs] == [3, 4]
    assert [c.conversation_id for c in out.conversations] == ["42:1700000000.0"]
