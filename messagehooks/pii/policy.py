"""The masking policy: for each record that leaves the pipeline, what is done to each field.

It is data (`POLICY`), applied by one function (`apply`) wherever a record leaves for someone
else: dataset/rows.py for every dataset row, streams/agents.py for the masked `turn-pairs` and
`conversations` topics. A test keeps it complete: every text column of every table has an entry.

Treatments:

- ``text``: `mask_pii` (None stays None); ``texts``: each string of a list;
- ``original``: a dead letter's original bytes, JSON-aware (messagehooks/pii/originals.py);
- ``keep``: left as is, because the pipeline or the operator wrote it (an enum, a topic name, a
  request id, a channel id of the operator's own bot, a JSON path) or because it is an id that
  the ingest already pseudonymized where needed (messagehooks/pii/ids.py: chat ids, message ids
  and sender ids holding personal data, or every chat id once the operator sets a salt).

A path ``field[].key`` applies to ``key`` of each object of the list ``field``.
"""

from typing import Any, Literal

from messagehooks.pii.mask import mask_pii
from messagehooks.pii.originals import mask_original

Treatment = Literal["text", "texts", "original", "keep"]

_IDS: dict[str, Treatment] = {"chat_id": "keep", "conversation_id": "keep"}
_CHAT: dict[str, Treatment] = {"country": "text", "channel_id": "keep"}

POLICY: dict[str, dict[str, Treatment]] = {
    "messages": {
        "message_id": "keep",
        "chat_id": "keep",
        "hook": "keep",
        "type": "text",
        "role": "keep",
        "sender_id": "keep",
        "body": "text",
        "payload": "text",
        "options": "texts",
        "action": "text",
        "request_id": "keep",
        **_CHAT,
    },
    "turn_pairs": {
        "pair_id": "keep",
        **_IDS,
        "prompt_role": "keep",
        "prompt_text": "text",
        "prompt_types": "texts",
        "prompt_options": "texts",
        "prompt_payload": "text",
        "prompt_message_ids": "keep",
        "response_role": "keep",
        "response_text": "text",
        "response_types": "texts",
        "response_payload": "text",
        "response_message_ids": "keep",
        "context[].role": "keep",
        "context[].text": "text",
        **_CHAT,
    },
    "conversations": {
        **_IDS,
        "transcript[].role": "keep",
        "transcript[].text": "text",
        **_CHAT,
    },
    "dead_letters": {
        "dead_letter_id": "keep",
        "source": "keep",
        "hook": "keep",
        "request_id": "keep",
        "reason": "keep",
        "detail": "text",
        "field": "keep",
        "source_topic": "keep",
        "original_encoding": "keep",
        "original": "original",
    },
}
"""Record kind (a dataset table; its topic's records have the same fields) -> field -> treatment."""


def apply(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """Mask `record` (a row or a decoded topic record of `kind`) in place, and return it."""
    for path, treatment in POLICY[kind].items():
        if treatment == "keep":
            continue
        field, _, key = path.partition("[].")
        if key:
            items = record.get(field) or ()
            record[field] = [{**item, key: _treat(treatment, item.get(key), record)} for item in items]
        elif field in record:
            record[field] = _treat(treatment, record[field], record)
    return record


def _treat(treatment: Treatment, value: Any, record: dict[str, Any]) -> Any:
    if value is None:
        return None
    if treatment == "text":
        return mask_pii(value)
    if treatment == "texts":
        return [mask_pii(item) for item in value]
    return mask_original(value, record.get("original_encoding"))
