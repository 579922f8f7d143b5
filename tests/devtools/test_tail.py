"""`messagehooks tail` ends by itself (`--max`, `--timeout` in all) and says why a topic is quiet."""

import asyncio
import io

import pytest

from devtools.tail import quiet_hint, tail
from messagehooks.kafka import ensure_project_topics, make_producer
from messagehooks.settings import Settings, load_settings
from tests.conftest import broker_env


def _settings(broker, unique: str) -> Settings:
    env = {
        **broker_env(broker),
        "MESSAGEHOOKS_TOPIC_PREFIX": f"tail{unique}.",
        "MESSAGEHOOKS_PARTITIONS": "2",
    }
    return load_settings(env)


def test_the_quiet_hint_says_when_each_topic_is_written():
    settings = load_settings({"MESSAGEHOOKS_CONVERSATION_GAP": "90"})
    conversations = quiet_hint(settings, "landbot.conversations", None)
    assert conversations.startswith("tail: no record on landbot.conversations yet; a conversation is written")
    assert "MESSAGEHOOKS_CONVERSATION_GAP of silence in its chat (90 s here" in conversations
    assert "an unanswered one when a conversation closes" in quiet_hint(settings, "landbot.turn-pairs", None)
    messages = quiet_hint(settings, "landbot.messages", "42")
    assert messages.startswith(
        "tail: no record of chat '42' on landbot.messages yet; is the pipeline running"
    )
    assert all(
        hint.count("\n") == 1 and hint.endswith("--timeout S stops tail.\n")
        for hint in (conversations, messages)
    )


@pytest.mark.integration
def test_tail_of_a_quiet_topic_hints_once_and_ends_at_its_timeout(broker, unique):
    settings = _settings(broker, unique)
    asyncio.run(ensure_project_topics(settings))
    out, err = io.StringIO(), io.StringIO()
    quiet = {"chat": None, "limit": None, "timeout": 2.0, "hint_after": 0.5}
    code = asyncio.run(tail(settings, "conversations", from_beginning=True, out=out, err=err, **quiet))
    assert (code, out.getvalue()) == (0, "")
    assert err.getvalue() == quiet_hint(settings, settings.topics.conversations, None)  # once


@pytest.mark.integration
def test_tail_timeout_counts_all_seconds_even_while_records_arrive(broker, unique):
    """Records of another chat keep arriving: an idle timeout would never end, `--timeout` does."""
    settings = _settings(broker, unique)

    async def scenario() -> tuple[int, int, int, str, str]:
        await ensure_project_topics(settings)
        producer = make_producer(settings.bootstrap)
        await producer.start()
        sent = 0
        tail_done = asyncio.Event()

        async def keep_sending() -> None:
            nonlocal sent
            while not tail_done.is_set() and sent < 600:
                await producer.send_and_wait(settings.topics.messages, b'{"n": %d}' % sent, key=b"other")
                sent += 1
                await asyncio.sleep(0.1)

        sending = asyncio.create_task(keep_sending())
        out, err = io.StringIO(), io.StringIO()
        try:
            await asyncio.sleep(0.5)  # records flow before tail starts, and while it runs
            before = sent
            code = await tail(
                settings,
                "messages",
                from_beginning=False,
                chat="wanted",
                limit=None,
                timeout=2.0,
                out=out,
                err=err,
                hint_after=0.5,
            )
            tail_done.set()
            during = sent - before
            await sending
        finally:
            await producer.stop()
        return code, during, sent, out.getvalue(), err.getvalue()

    code, during, sent, out, err = asyncio.run(scenario())
    assert code == 0
    assert out == ""  # only chat "other" was written
    assert during > 0  # records arrived while tail ran ...
    assert sent < 600  # ... and tail still ended, before the sender's own end
    assert err == quiet_hint(settings, settings.topics.messages, "wanted")


@pytest.mark.integration
def test_tail_max_stops_after_that_many_records(broker, unique):
    settings = _settings(broker, unique)

    async def scenario() -> str:
        await ensure_project_topics(settings)
        producer = make_producer(settings.bootstrap)
        await producer.start()
        try:
            for n in range(5):
                await producer.send_and_wait(settings.topics.turn_pairs, b'{"n": %d}' % n, key=b"7")
        finally:
            await producer.stop()
        out = io.StringIO()
        first_three = {"chat": "7", "limit": 3, "timeout": 60.0}
        await tail(settings, "turn-pairs", from_beginning=True, out=out, err=io.StringIO(), **first_three)
        return out.getvalue()

    printed = asyncio.run(scenario())
    assert printed.count(f"# tail{unique}.turn-pairs[") == 3
    assert '"n": 0' in printed
    assert '"n": 3' not in printed
