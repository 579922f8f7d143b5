import pytest

from features import is_pair, pair_turns, sessionize
from tests.factories import BASE_TS, event, example_chat, message


def test_example_pairs():
    pairs = sessionize(example_chat()).pairs

    cid = f"42:{BASE_TS!r}"
    assert [(p.pair_id, p.prompt_role, p.response_role, p.latency_s) for p in pairs] == [
        (f"{cid}:0", "bot", "customer", 4.0),
        (f"{cid}:1", "customer", "bot", 1.0),
        (f"{cid}:2", "bot", "customer", 14.0),
        (f"{cid}:3", "customer", "agent", 9.0),
        (f"{cid}:4", "agent", None, None),
    ]
    first = pairs[0]
    assert first.prompt_ts == BASE_TS + 1  # end of the prompt turn
    assert first.response_ts == BASE_TS + 5  # start of the response turn
    assert first.prompt_option_count == 2
    assert first.prompt_types == ("text", "dialog")
    assert first.response_payload == "$1"
    assert first.response_is_button is True
    assert first.prompt_is_button is False
    assert first.prompt_has_question is True
    assert first.answered is True
    assert first.context == ()
    assert (first.hour_of_day, first.weekday) == (22, 1)  # Tuesday 22:13 UTC
    assert (first.country, first.channel_id) == ("spain", "761536")

    takeover = pairs[3]
    assert takeover.prompt_text == "My order 1234 never arrived\ncan you help?"
    assert takeover.prompt_has_digits is True
    assert takeover.response_has_url is True
    assert takeover.agent_assigned is False  # the assign event (t+22) follows the prompt (t+21)
    assert [c.role for c in takeover.context] == ["bot", "customer", "bot"]

    unanswered = pairs[4]
    assert unanswered.answered is False
    assert unanswered.agent_assigned is True
    assert unanswered.response_text is None
    assert unanswered.response_chars is None
    assert unanswered.response_has_url is None
    assert unanswered.prompt_words == 13
    assert unanswered.prompt_turn_index == 4


@pytest.mark.parametrize(
    ("prompt", "response", "expected"),
    [
        ("bot", "customer", True),
        ("agent", "customer", True),
        ("customer", "bot", True),
        ("customer", "agent", True),
        ("bot", "agent", False),
        ("agent", "bot", False),
        ("customer", "customer", False),
    ],
)
def test_is_pair(prompt, response, expected):
    assert is_pair(prompt, response) is expected


def test_bot_agent_adjacency_yields_no_pair_and_pair_index_stays_dense():
    pairs = sessionize(
        [
            message(ts=BASE_TS, body="help"),
            message(role="bot", ts=BASE_TS + 1, body="Transferring you"),
            message(role="agent", ts=BASE_TS + 2, body="Hello"),
            message(ts=BASE_TS + 3, body="hi"),
        ]
    ).pairs

    assert [(p.pair_index, p.prompt_role, p.response_role) for p in pairs] == [
        (0, "customer", "bot"),
        (1, "agent", "customer"),
    ]


def test_only_bot_messages_give_one_unanswered_pair():
    pairs = sessionize([message(role="bot", ts=BASE_TS + i, body=f"b{i}") for i in range(3)]).pairs

    assert len(pairs) == 1
    assert pairs[0].prompt_text == "b0\nb1\nb2"
    assert pairs[0].answered is False
    assert pairs[0].pair_index == 0


def test_last_customer_turn_is_not_unanswered():
    pairs = sessionize([message(role="bot", ts=BASE_TS, body="q?"), message(ts=BASE_TS + 1, body="a")]).pairs

    assert [p.answered for p in pairs] == [True]


def test_agent_takeover_assignment_flag_follows_assign_and_unassign():
    pairs = sessionize(
        [
            message(ts=BASE_TS, body="human please"),
            event(action="assign", ts=BASE_TS + 1),
            message(role="agent", ts=BASE_TS + 2, body="hi"),
            message(ts=BASE_TS + 3, body="thanks"),
            event(action="unassign", ts=BASE_TS + 4),
            message(role="bot", ts=BASE_TS + 5, body="anything else?"),
            message(ts=BASE_TS + 6, body="no"),
        ]
    ).pairs

    assert [(p.prompt_role, p.response_role, p.agent_assigned) for p in pairs] == [
        ("customer", "agent", False),
        ("agent", "customer", True),
        ("customer", "bot", True),  # prompt ended at t+3, before the unassign
        ("bot", "customer", False),
    ]


def test_context_is_limited_to_context_turns():
    msgs = [message(role="bot" if i % 2 else "customer", ts=BASE_TS + i, body=str(i)) for i in range(6)]

    pairs = sessionize(msgs, context_turns=1).pairs

    assert [tuple(c.text for c in p.context) for p in pairs] == [
        (),
        ("0",),
        ("1",),
        ("2",),
        ("3",),
        ("4",),  # the unanswered last bot turn
    ]
    assert [p.answered for p in pairs] == [True] * 5 + [False]


def test_pair_turns_matches_incremental_emission():
    out = sessionize(example_chat(), context_turns=2)

    assert pair_turns(out.turns, context_turns=2) == out.pairs


def test_country_and_channel_are_the_latest_known_at_the_prompt_end():
    pairs = sessionize(
        [
            message(role="bot", ts=BASE_TS, body="hi", channel_id="7"),
            message(ts=BASE_TS + 1, body="hola", country="spain"),
            message(role="bot", ts=BASE_TS + 2, body="ok", country=None),
            message(ts=BASE_TS + 3, body="bye", country="france"),
        ]
    ).pairs

    assert [(p.country, p.channel_id) for p in pairs] == [
        (None, "7"),
        ("spain", "7"),
        ("spain", "7"),
    ]
