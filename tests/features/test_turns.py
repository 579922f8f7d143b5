import pytest

from features import Turn, sessionize
from features.turns import forms_turn, start_turn
from messagehooks.schema import Message
from tests.factories import BASE_TS, event, example_chat, message


def turns_of(messages: list[Message]) -> list[Turn]:
    return sessionize(messages).turns


def test_example_turns():
    turns = turns_of(example_chat())

    assert [(t.turn_index, t.role) for t in turns] == [
        (0, "bot"),
        (1, "customer"),
        (2, "bot"),
        (3, "customer"),
        (4, "agent"),
    ]
    bot, button, _, customer, agent = turns
    assert bot.text == "Hi! I'm Botty.\nWhat do you need?"
    assert bot.types == ("text", "dialog")
    assert bot.options == ("Pricing", "Support")
    assert (bot.start_ts, bot.end_ts) == (BASE_TS, BASE_TS + 1)
    assert bot.message_ids == ("e1", "e2")
    assert button.payload == "$1"
    assert button.types == ("button",)
    assert customer.text == "My order 1234 never arrived\ncan you help?"
    # The sys message (e9) inside the agent's turn neither joins nor breaks it.
    assert agent.message_ids == ("e8", "e10")
    assert (agent.start_ts, agent.end_ts) == (BASE_TS + 30, BASE_TS + 40)
    assert agent.agent_assigned
    assert not customer.agent_assigned
    assert {t.conversation_id for t in turns} == {f"42:{BASE_TS!r}"}


def test_events_and_sys_are_transparent_between_same_role_messages():
    turns = turns_of(
        [
            message(ts=BASE_TS, body="a"),
            event(action="assign", ts=BASE_TS + 1),
            message(role="sys", ts=BASE_TS + 2, body="sys"),
            message(role="unknown", type="weird", ts=BASE_TS + 3, body="?"),
            message(ts=BASE_TS + 4, body="b"),
        ]
    )

    assert len(turns) == 1
    assert turns[0].text == "a\nb"
    assert turns[0].types == ("text", "text")


def test_text_skips_empty_bodies_and_payload_is_last_non_null():
    turns = turns_of(
        [
            message(type="button", ts=BASE_TS, body="Yes", payload="$0"),
            message(type="image", ts=BASE_TS + 1, body=None),
            message(type="text", ts=BASE_TS + 2, body=""),
            message(type="button", ts=BASE_TS + 3, body="No", payload="$1"),
            message(type="text", ts=BASE_TS + 4, body="really"),
        ]
    )

    assert turns[0].text == "Yes\nNo\nreally"
    assert turns[0].payload == "$1"
    assert turns[0].types == ("button", "image", "text", "button", "text")


def test_only_events_and_sys_make_no_turn():
    out = sessionize([event(action="assign"), message(role="sys", ts=BASE_TS + 1)])

    assert out.turns == []
    assert out.pairs == []
    assert len(out.conversations) == 1


def test_forms_turn():
    assert forms_turn(message(role="customer"))
    assert forms_turn(message(role="bot", type="iframe"))
    assert forms_turn(message(role="agent"))
    assert not forms_turn(message(role="sys"))
    assert not forms_turn(message(role="unknown"))
    assert not forms_turn(event(action="assign", role="agent"))


def test_start_turn_rejects_a_message_that_forms_no_turn():
    with pytest.raises(ValueError, match="cannot start a turn"):
        start_turn(event(action="assign"), 0, country=None, channel_id=None, agent_assigned=False)
