import msgspec
import pytest

from features import Conversation, sessionize
from features.conversation import conversation_id
from tests.factories import BASE_TS, event, example_chat, message


def test_example_conversation():
    (conv,) = sessionize(example_chat()).conversations

    assert conv.conversation_id == "42:1700000000.0"
    assert (conv.start_ts, conv.end_ts, conv.duration_s) == (BASE_TS, BASE_TS + 50, 50.0)
    assert (conv.customer_messages, conv.bot_messages, conv.agent_messages) == (3, 3, 2)
    assert (conv.sys_messages, conv.unknown_messages, conv.event_messages) == (1, 0, 2)
    assert conv.message_count == 11
    assert (conv.turn_count, conv.customer_turns, conv.bot_turns, conv.agent_turns) == (5, 2, 2, 1)
    assert (conv.pair_count, conv.answered_pair_count) == (5, 4)
    assert conv.first_response_latency_s == 1.0  # customer "Support" -> bot
    assert conv.median_customer_latency_s == 9.0  # median of 4 and 14
    assert conv.escalated is True
    assert conv.time_to_assignment_s == 22.0
    assert conv.abandoned is True
    assert [(e.role, e.ts) for e in conv.transcript] == [
        ("bot", BASE_TS),
        ("customer", BASE_TS + 5),
        ("bot", BASE_TS + 6),
        ("customer", BASE_TS + 20),
        ("agent", BASE_TS + 30),
    ]
    assert (conv.country, conv.channel_id) == ("spain", "761536")


def test_conversation_json_round_trip():
    (conv,) = sessionize(example_chat()).conversations

    assert msgspec.json.decode(msgspec.json.encode(conv), type=Conversation) == conv


@pytest.mark.parametrize(("gap", "expected"), [(1800.0, 1), (1800.25, 2)])
def test_gap_strictly_longer_than_conversation_gap_splits(gap, expected):
    out = sessionize([message(role="bot", ts=BASE_TS, body="hi"), message(ts=BASE_TS + gap, body="hey")])

    assert len(out.conversations) == expected
    if expected == 2:
        assert [c.conversation_id for c in out.conversations] == [
            f"42:{BASE_TS!r}",
            f"42:{BASE_TS + gap!r}",
        ]
        # The bot turn was left unanswered by the gap; the customer turn gets no pair.
        assert [(p.conversation_id, p.answered) for p in out.pairs] == [(f"42:{BASE_TS!r}", False)]


def test_events_count_for_the_gap_and_turn_indexes_restart():
    out = sessionize(
        [
            message(ts=BASE_TS, body="a"),
            event(action="assign", ts=BASE_TS + 1000),
            message(role="agent", ts=BASE_TS + 2000, body="b"),
            message(ts=BASE_TS + 9000, body="c"),
            message(role="bot", ts=BASE_TS + 9001, body="d"),
        ],
        conversation_gap=1800,
    )

    assert len(out.conversations) == 2
    assert [t.turn_index for t in out.turns] == [0, 1, 0, 1]
    assert out.conversations[1].escalated is False


def test_not_abandoned_without_turns_and_escalated_by_agent_message_alone():
    out = sessionize(
        [
            message(role="sys", ts=BASE_TS, body="x"),
            message(role="agent", ts=BASE_TS + 4000, body="hi"),
            message(ts=BASE_TS + 4001, body="hello"),
        ]
    )

    first, second = out.conversations
    assert (first.abandoned, first.escalated, first.turn_count) == (False, False, 0)
    assert (second.abandoned, second.escalated, second.time_to_assignment_s) == (False, True, None)
    assert second.first_response_latency_s is None  # no customer prompt
    assert second.median_customer_latency_s == 1.0


def test_conversation_id_uses_float_repr():
    assert conversation_id("7", 1747943104) == "7:1747943104.0"
    assert conversation_id("7", 1606145527.9043446) == "7:1606145527.9043446"


def test_country_carries_over_from_previous_conversation():
    out = sessionize(
        [
            message(ts=BASE_TS, body="a", country="spain"),
            message(ts=BASE_TS + 4000, body="b"),
        ]
    )

    assert [c.country for c in out.conversations] == ["spain", "spain"]
