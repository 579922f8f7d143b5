"""Wire formats of the stream: the table codec for `ChatState` and the output encoders.

The Faust memory store keeps decoded `ChatState` objects; the codec only runs when a state is
written to (or recovered from) the changelog topic.
"""

from typing import Any

import msgspec
from faust.serializers import codecs

from features.structs import Conversation, TurnPair
from messagehooks.pii import policy
from streams.sessions import ChatState

CHAT_STATE_CODEC = "messagehooks-chat-state"

_encoder = msgspec.json.Encoder()
_state_decoder = msgspec.json.Decoder(ChatState)


class ChatStateCodec(codecs.Codec):
    """msgspec JSON for `ChatState` values of the chats table."""

    def _dumps(self, obj: Any) -> bytes:
        return _encoder.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return _state_decoder.decode(s)


def register_codecs() -> None:
    """Make the table codec known to Faust (idempotent)."""
    codecs.register(CHAT_STATE_CODEC, ChatStateCodec())


def encode_record(record: TurnPair | Conversation, *, masked: bool = False) -> bytes:
    """JSON bytes of an output record (it carries its own `schema_version`).

    `masked`: with personal data masked by the policy (messagehooks/pii/policy.py), as the
    `turn-pairs` and `conversations` topics carry it unless ``MESSAGEHOOKS_MASK_TOPICS`` is off.
    """
    if not masked:
        return _encoder.encode(record)
    kind = "turn_pairs" if isinstance(record, TurnPair) else "conversations"
    return _encoder.encode(policy.apply(kind, msgspec.to_builtins(record)))
