"""The subscriber topics' records: masked by the policy unless the operator opts out."""

import msgspec

from features.batch import build_dataset
from features.structs import Conversation, TurnPair
from messagehooks.pii import EMAIL, PHONE
from streams.codec import encode_record
from tests.factories import message


def _records() -> tuple[TurnPair, Conversation]:
    messages = [
        message(message_id="m1", ts=1.0, role="bot", body="Your e-mail?"),
        message(message_id="m2", ts=2.0, role="customer", body="ana@example.com, +34 600 112 233"),
        message(message_id="m3", ts=3.0, role="bot", body="Thanks"),
    ]
    pairs, conversations = build_dataset(messages, conversation_gap=100.0)
    return pairs[1], conversations[0]


def test_masked_records_have_no_personal_data_and_the_same_shape():
    pair, conversation = _records()
    masked_pair = msgspec.json.decode(encode_record(pair, masked=True), type=TurnPair)
    assert masked_pair.prompt_text == f"{EMAIL}, {PHONE}"
    assert masked_pair.context[-1].text == "Your e-mail?"
    assert msgspec.structs.replace(masked_pair, prompt_text=pair.prompt_text) == pair
    masked_conversation = msgspec.json.decode(encode_record(conversation, masked=True), type=Conversation)
    assert [entry.text for entry in masked_conversation.transcript] == [
        "Your e-mail?",
        f"{EMAIL}, {PHONE}",
        "Thanks",
    ]


def test_unmasked_records_are_the_originals():
    pair, conversation = _records()
    assert msgspec.json.decode(encode_record(pair), type=TurnPair) == pair
    assert msgspec.json.decode(encode_record(conversation), type=Conversation) == conversation
