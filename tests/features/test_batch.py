import random
import types

import msgspec
import pandas as pd
import pytest

import features
from features import (
    Conversation,
    TurnPair,
    build_dataset,
    conversations_frame,
    deduplicate,
    messages_from_frame,
    pairs_frame,
    sessionize,
)
from messagehooks.schema import Message
from tests.factories import BASE_TS, example_chat, message


def two_chats() -> list[Message]:
    return example_chat("42") + example_chat("7", base=BASE_TS + 100)[:6]


def test_build_dataset_equals_sessionize_per_chat():
    pairs, conversations = build_dataset(two_chats())

    forty_two = sessionize(example_chat("42"))
    seven = sessionize(example_chat("7", base=BASE_TS + 100)[:6])
    # Chats come in sorted (string) order: "42" < "7".
    assert pairs == forty_two.pairs + seven.pairs
    assert conversations == forty_two.conversations + seven.conversations


def test_build_dataset_is_deterministic_under_shuffle_and_duplicates():
    expected = build_dataset(two_chats())
    msgs = two_chats() + two_chats()[:5]
    random.Random(4).shuffle(msgs)

    assert build_dataset(msgs) == expected


def test_deduplicate_keeps_first_by_order_key():
    late_copy = message(message_id="x", ts=BASE_TS + 5, body="later")
    early = message(message_id="x", ts=BASE_TS, body="early")

    assert [m.body for m in deduplicate([late_copy, early])] == ["early"]


def test_dataframe_input_equals_message_input():
    msgs = two_chats()
    frame = pd.DataFrame([msgspec.structs.asdict(m) for m in msgs]).drop(columns=["raw"])
    frame["options"] = [list(m.options) for m in msgs]  # as Parquet/Delta would give them back

    assert build_dataset(frame) == build_dataset(msgs)


def test_messages_from_frame_fills_defaults_and_nan():
    frame = pd.DataFrame(
        {
            "message_id": ["a", "b"],
            "chat_id": [1, 1],
            "type": ["text", "button"],
            "role": ["customer", "customer"],
            "timestamp": [1, 2.5],
            "seq": [None, 3],
            "body": ["x", None],
        }
    )

    first, second = messages_from_frame(frame)

    assert (first.chat_id, first.hook, first.timestamp, first.seq) == ("1", "", 1.0, None)
    assert (second.seq, second.body, second.options) == (3, None, ())


def test_messages_from_frame_names_missing_columns():
    with pytest.raises(ValueError, match="chat_id"):
        messages_from_frame(pd.DataFrame({"message_id": ["a"]}))


def test_frames_have_one_column_per_field_even_when_empty():
    pairs, conversations = build_dataset(example_chat())

    frame = pairs_frame(pairs)
    assert list(frame.columns) == list(TurnPair.__struct_fields__)
    assert len(frame) == 5
    assert frame.loc[0, "context"] == ()
    assert frame["context"].iloc[4][0] == {"role": "customer", "text": "Support"}
    assert frame["answered"].tolist() == [True, True, True, True, False]
    conv_frame = conversations_frame(conversations)
    assert list(conv_frame.columns) == list(Conversation.__struct_fields__)
    assert conv_frame["transcript"].iloc[0][0]["role"] == "bot"
    assert pairs_frame([]).columns.tolist() == list(TurnPair.__struct_fields__)
    assert conversations_frame([]).empty


def test_all_is_sorted_and_complete():
    public = {
        name
        for name in dir(features)
        if not name.startswith("_") and not isinstance(getattr(features, name), types.ModuleType)
    }  # submodules (features.batch, features.training, ...) are imported, not exported

    assert features.__all__ == sorted(features.__all__, key=lambda n: (not n.isupper(), n))
    assert set(features.__all__) == public
    assert features.FEATURE_VERSION == 1
