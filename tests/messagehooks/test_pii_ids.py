"""Pseudonymous ids: hashed once at the ingest, so every id built later from them is too."""

import json

from dataset.backfill import messages_from_delivery
from features.batch import build_dataset
from messagehooks.pii.ids import NO_SALT, PUBLIC_SALT, Pseudonyms, holds_pii, pseudonym
from messagehooks.settings import Hook, load_settings
from messagehooks.validation import normalize
from tests.factories import landbot_body, landbot_message

SALTED = Pseudonyms(b"operator secret")


def _normalize(message: dict, ids: Pseudonyms = NO_SALT):
    return normalize(json.dumps(message).encode(), hook=Hook("h"), received_at=0.0, request_id="r", ids=ids)


def test_a_salt_hashes_every_chat_and_sender_id_and_keeps_them_stable():
    message = _normalize(landbot_message(chat=9500302, uuid="u-1", sender_id=77), SALTED)
    assert message.chat_id == pseudonym("9500302", b"operator secret")
    assert message.chat_id.startswith("p-")
    assert message.sender_id == pseudonym("77", b"operator secret")
    assert message.message_id == "u-1"  # Landbot's uuid is no customer value
    again = _normalize(landbot_message(chat=9500302, uuid="u-2", sender_id=77), SALTED)
    assert again.chat_id == message.chat_id
    assert _normalize(landbot_message(chat=9500302), Pseudonyms(b"other")).chat_id != message.chat_id


def test_without_a_salt_landbot_ids_stay_and_ids_holding_personal_data_are_hashed():
    plain = _normalize(landbot_message(chat=473716610, uuid="c900000-1", sender_id=5))
    assert (plain.chat_id, plain.message_id, plain.sender_id) == ("473716610", "c900000-1", "5")
    hostile = _normalize(
        landbot_message(chat="ana@example.com", uuid="ana@example.com", sender_id="+34 600 112 233")
    )
    assert hostile.chat_id == pseudonym("ana@example.com", PUBLIC_SALT)
    assert hostile.message_id == hostile.chat_id  # same value, same pseudonym
    assert hostile.sender_id == pseudonym("+34 600 112 233", PUBLIC_SALT)


def test_pair_and_conversation_ids_are_built_from_the_pseudonym():
    messages = [
        _normalize(landbot_message(chat="+34600112233", ts=1.0, sender_type="bot", body="Hi", uuid="a")),
        _normalize(landbot_message(chat="+34600112233", ts=2.0, body="Hello", uuid="b")),
    ]
    pairs, conversations = build_dataset(messages)
    ids = [p.pair_id for p in pairs] + [c.conversation_id for c in conversations]
    assert ids
    assert all(i.startswith(pseudonym("+34600112233", PUBLIC_SALT) + ":") for i in ids)
    assert not any("600112233" in i for i in ids)


def test_the_backfill_derives_the_ids_the_ingest_derived():
    settings = load_settings({"MESSAGEHOOKS_ID_SALT": "operator secret"})
    assert settings.pseudonyms == SALTED
    assert "operator secret" not in repr(settings)
    message = landbot_message(chat=9500302, uuid="u-1")
    (backfilled,), rejected = messages_from_delivery(
        json.dumps(landbot_body(message)).encode(), settings, line=1
    )
    assert rejected == 0
    ingested = _normalize(message, SALTED)
    assert (backfilled.chat_id, backfilled.message_id) == (ingested.chat_id, ingested.message_id)


def test_uuids_and_numbers_are_not_personal_data():
    assert not holds_pii("550e8400-e29b-41d4-a716-446655440000")
    assert not holds_pii("473716610")
    assert not holds_pii("hash-0123456789abcdef0123456789abcdef")
    assert holds_pii("ana@example.com")
    assert holds_pii("+34 600 112 233")
