"""Feature extraction shared by the stream and the batch backfill (one definition, no skew).

A chat's messages, in order, become conversations, turns and turn pairs with their features
(docs/streams.md). `build_dataset` is the batch entry point; `streams.sessions` drives the same
session builder incrementally.
"""

from features.batch import (
    build_dataset,
    conversations_frame,
    deduplicate,
    messages_from_frame,
    pairs_frame,
)
from features.conversation import ConversationState, conversation_id
from features.pairs import is_pair, make_pair, pair_turns
from features.session import (
    DEFAULT_CONTEXT_TURNS,
    DEFAULT_CONVERSATION_GAP,
    ChatSession,
    Emitted,
    add_message,
    close_conversation,
    sessionize,
)
from features.structs import (
    FEATURE_VERSION,
    ContextTurn,
    Conversation,
    TranscriptEntry,
    Turn,
    TurnPair,
    TurnRole,
)
from features.turns import OpenTurn, forms_turn

__all__ = [
    "DEFAULT_CONTEXT_TURNS",
    "DEFAULT_CONVERSATION_GAP",
    "FEATURE_VERSION",
    "ChatSession",
    "ContextTurn",
    "Conversation",
    "ConversationState",
    "Emitted",
    "OpenTurn",
    "TranscriptEntry",
    "Turn",
    "TurnPair",
    "TurnRole",
    "add_message",
    "build_dataset",
    "close_conversation",
    "conversation_id",
    "conversations_frame",
    "deduplicate",
    "forms_turn",
    "is_pair",
    "make_pair",
    "messages_from_frame",
    "pair_turns",
    "pairs_frame",
    "sessionize",
]
