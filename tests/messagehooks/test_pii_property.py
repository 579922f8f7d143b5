"""Property: personal data typed anywhere in a Landbot message reaches no table and no masked topic.

Landbot messages are generated with a value of some surface form (benchmarks/pii_forms.py) in
every field a customer or an adversary controls: body, buttons, payload, action, country, the
customer's name, e-mail and phone, the chat id, the sender id and the uuid. They go through the
pure functions of the pipeline — the ingest's normalization (with its id pseudonyms), the batch
pairing, the dataset rows, the masked topic records, the dead-letter row of the same bytes (as
text, with ``\\u0040`` escapes, and as base64 of Latin-1) — and no trace of a value may be left.
"""

import base64
import json
import random
import re
from typing import Any

import msgspec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from benchmarks.pii_forms import FORMS, Form
from dataset.rows import conversation_row, dead_letter_row, masker, message_row, pair_row
from features.batch import build_dataset
from messagehooks.settings import Hook
from messagehooks.validation import normalize
from streams.codec import encode_record
from tests.pii_leaks import leaks, plain, strings_of

MASK = masker(True)
_FILLER = st.text(alphabet="abcdefghij klmnopqrstuvwxyz ÁÉÍÓÚñ¿?¡!.,;\n", max_size=12)


@st.composite
def _values(draw: st.DrawFn) -> tuple[Form, str]:
    form = draw(st.sampled_from(FORMS))
    return form, form.render(random.Random(draw(st.integers(0, 2**32))))


def _secrets(form: Form, value: str) -> tuple[list[str], str]:
    """What must not survive: the e-mail's local words, or the value's digits."""
    seen = plain(value)
    if form.kind == "EMAIL":
        local = re.split(r"@|\bat\b|\[at\]", seen)[0]
        return [w for w in re.findall(r"[a-z]{4,}", local) if w not in {"https", "shop", "example"}], ""
    return [], re.sub(r"[^0-9]", "", seen)


@st.composite
def _messages(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[tuple[list[str], str]]]:
    secrets = []
    fillers = []

    def text() -> str:
        form, value = draw(_values())
        secrets.append(_secrets(form, value))
        fillers.extend([draw(_FILLER), draw(_FILLER)])
        return f"{fillers[-2]} {form.wrap[0]}{value}{form.wrap[1]} {fillers[-1]}"

    def id_value() -> str:
        form, value = draw(_values())
        if value.isdigit():
            return "65462634"  # a bare number is an id, never personal data (messagehooks/pii/ids.py)
        secrets.append(_secrets(form, value))
        return value

    chat = id_value()
    messages = []
    for index, role in enumerate(["bot", "customer", "bot", "customer"]):
        messages.append(
            {
                "type": draw(st.sampled_from(["text", "button", "dialog"])),
                "timestamp": 1_700_000_000.0 + index,
                "data": {"body": text(), "payload": text(), "buttons": [{"text": text()}, text()]},
                "sender": {"id": id_value(), "name": text(), "type": role},
                "customer": {"id": id_value(), "country": text(), "name": text(), "email": text()},
                "channel": {"id": 761536},
                "_raw": {"chat": chat, "uuid": id_value(), "action": text()},
            }
        )
    # Filler that happens to spell a secret word ("unts" of "…unts@…") is not a leak the check can tell apart.
    words = {word for secret_words, _ in secrets for word in secret_words}
    assume(not any(word in plain(filler) for filler in fillers for word in words))
    return messages, secrets


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_messages())
def test_no_trace_of_personal_data_in_any_table_or_masked_topic(generated):
    landbot, secrets = generated
    messages = [
        normalize(json.dumps(m).encode(), hook=Hook("h"), received_at=0.0, request_id="r") for m in landbot
    ]
    pairs, conversations = build_dataset(messages, conversation_gap=100.0)
    assert pairs
    assert conversations
    outputs: list[Any] = [message_row(m, late=False, partition=0, offset=0, mask=MASK) for m in messages]
    outputs += [pair_row(p, MASK) for p in pairs]
    outputs += [conversation_row(c, MASK) for c in conversations]
    outputs += [msgspec.json.decode(encode_record(r, masked=True)) for r in [*pairs, *conversations]]
    for original in landbot:
        text = json.dumps(original, ensure_ascii=False)
        originals = [
            ("utf-8", text),
            ("utf-8", text.replace("@", "\\u0040")),
            ("base64", base64.b64encode(text.encode() + b"\xff").decode()),  # UTF-8 and a stray byte
        ]
        try:
            originals.append(("base64", base64.b64encode(text.encode("latin-1")).decode()))
        except UnicodeEncodeError:
            pass  # not every value has a Latin-1 form
        for encoding, value in originals:
            record = {"reason": "r", "detail": "d", "received_at": 1.0, "original_encoding": encoding}
            row = dead_letter_row(
                json.dumps({**record, "original": value}).encode(),
                key=b"h",
                topic="t",
                partition=0,
                offset=0,
                mask=MASK,
            )
            if encoding == "base64":
                row["original"] = base64.b64decode(row["original"]).decode("utf-8", "replace")
            outputs.append(row)
    found = leaks(strings_of(outputs), secrets)
    assert not found, found[:5]
