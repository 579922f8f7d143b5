"""The simulator's traffic without HTTP: its chat scripts as normalized messages, and cuts of the stream.

`devtools.simulate` posts `chat_script`s at a rate; here the same scripts get the same kind of
start times (exponential gaps between chats at the target rate), go through the ingest's
normalization, and through the stream's session state machine up to a moment: the dataset a
version taken at that moment would hold, open conversations included.
"""

import json
import random
from collections.abc import Iterable

from dataset import store
from dataset.rows import conversation_row, masker, pair_row
from devtools.simulate import SimulationOptions, chat_script
from features.structs import Conversation, TurnPair
from messagehooks.schema import Message
from messagehooks.settings import Hook
from messagehooks.validation import normalize
from streams.sessions import ChatState, SessionSettings, close_idle, step

START = 1_790_000_000.0


def simulated_messages(options: SimulationOptions, *, start: float = START) -> list[Message]:
    """Every message of `options.chats` simulated chats, in event-time order."""
    scripts = [chat_script(options, index) for index in range(options.chats)]
    sample = scripts[:200]
    chat_gap = sum(len(script.messages) for script in sample) / len(sample) / options.rate
    arrivals = random.Random(f"{options.seed}:arrivals")
    hook, chat_start, messages = Hook("sim"), start, []
    for script in scripts:
        for item in script.messages:
            ts = round(chat_start + item.at * options.time_scale, 6)
            body = {**item.message, "timestamp": ts, "_raw": {**item.message["_raw"], "timestamp": ts}}
            messages.append(normalize(json.dumps(body).encode(), hook=hook, received_at=ts, request_id=""))
        chat_start += arrivals.expovariate(1 / chat_gap)
    return sorted(messages, key=lambda m: (m.timestamp, m.chat_id))


def stream_cut(
    messages: Iterable[Message], *, until: float, settings: SessionSettings
) -> tuple[list[TurnPair], list[Conversation]]:
    """What the stream has emitted at wall-clock time `until`: messages up to it, idle chats closed."""
    states: dict[str, ChatState] = {}
    pairs: list[TurnPair] = []
    conversations: list[Conversation] = []
    for message in messages:
        if message.timestamp > until:
            break
        states[message.chat_id], out = step(states.get(message.chat_id), message, settings)
        pairs.extend(out.pairs)
        conversations.extend(out.conversations)
    for state in states.values():
        _, out = close_idle(state, until, settings)
        pairs.extend(out.pairs)
        conversations.extend(out.conversations)
    return pairs, conversations


def write_dataset(root: str, pairs: Iterable[TurnPair], conversations: Iterable[Conversation]) -> None:
    """A version of each table that gets rows, with the rows the sink writes (masked)."""
    mask = masker(True)
    rows = {
        "turn_pairs": [pair_row(pair, mask) for pair in pairs],
        "conversations": [conversation_row(conversation, mask) for conversation in conversations],
    }
    for table, table_rows in rows.items():
        if table_rows:
            store.write(root, table, store.rows_to_arrow(table, table_rows))
