"""`messagehooks up` with its simulator: labels (closed conversations, unanswered pairs) in minutes.

The timeline is compressed through the settings alone, as a user could: an 8 s conversation gap
(the simulator keeps its pauses within half of it, and returning customers come after four), so
conversations close within a minute of `up` starting instead of thirty.
"""

import re

import pytest

from dataset import store
from devtools.simulate import LANGUAGES
from tests.reliability.up_process import UpProcess
from tests.support.poll import eventually

pytestmark = pytest.mark.integration

GAP = 8.0
WAIT_FOR_LABELS = 240.0
"""Seconds `up` may take to start and write the labels (about a minute on an idle machine)."""
DROPOFF_PROMPTS = ("name", "email", "order", "anything_else")


def _labels(root: str) -> tuple[list[dict], list[dict]]:
    """The conversations and the unanswered drop-off pairs written so far."""
    if not (store.exists(root, "conversations") and store.exists(root, "turn_pairs")):
        return [], []
    conversations = store.load("conversations", root=root).to_dict("records")
    pairs = store.load("turn_pairs", root=root)
    prompts = [LANGUAGES[language][prompt] for language in LANGUAGES for prompt in DROPOFF_PROMPTS]
    unanswered = pairs[~pairs["answered"]].to_dict("records")
    return conversations, [p for p in unanswered if any(text in p["prompt_text"] for text in prompts)]


def test_up_simulating_writes_closed_conversations_and_unanswered_pairs(engine, tmp_path):
    up = UpProcess(
        tmp_path,
        tmp_path / "data",
        simulate_rate=20,
        MESSAGEHOOKS_BROKER_ENGINE=engine,
        MESSAGEHOOKS_ALLOWED_LATENESS="1",
        MESSAGEHOOKS_CONVERSATION_GAP=str(GAP),
    ).start()
    root = str(tmp_path / "data" / "datasets")
    conversations: list[dict] = []
    dropoffs: list[dict] = []
    try:

        def labelled() -> bool:
            nonlocal conversations, dropoffs
            conversations, dropoffs = _labels(root)
            return len(conversations) >= 20 and len(dropoffs) >= 3

        eventually(labelled, timeout=WAIT_FOR_LABELS, interval=2, give_up=lambda: not up.alive())
    finally:
        code = up.stop()
    log = up.logs()
    assert len(conversations) >= 20, log[-3000:]
    assert len(dropoffs) >= 3, log[-3000:]
    greetings = tuple(words["greeting"] for words in LANGUAGES.values())
    for conversation in conversations:  # none split by a pause the pipeline took for the gap
        first = conversation["transcript"][0]
        assert first["role"] == "bot", conversation["transcript"]
        assert first["text"].startswith(greetings), conversation["transcript"]
    assert f"conversation gap {GAP:g} s (MESSAGEHOOKS_CONVERSATION_GAP)" in log
    assert "simulated traffic 20 messages/s" in log
    assert re.search(r"simulate: stopped at \S+ after \d+ s: interrupted", log), log[-3000:]
    assert code == 0, log[-3000:]
