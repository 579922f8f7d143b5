"""`dataset export --format chat-jsonl`: one conversation a line, as the message list chat models learn.

The lines are `features.chat.ChatLine`s (docs/schemas/chat-jsonl.v1.json) of the `conversations`
rows the export reads, in their order.
"""

from collections.abc import Iterator
from pathlib import Path

import msgspec

from dataset.exports.source import SPLIT_COLUMN, Source
from features.chat import ChatLine, chat_line

LINE_COLUMNS = [
    "conversation_id",
    "chat_id",
    SPLIT_COLUMN,
    "escalated",
    "abandoned",
    "transcript",
    "start_ts",
    "feature_version",
]
"""The columns a line is made of (`features.chat.chat_line`): only these become Python objects."""


def chat_lines(source: Source) -> Iterator[list[ChatLine]]:
    """The lines of `source` (a `conversations` read), in its order, a batch of rows at a time."""
    if source.table != "conversations":
        raise ValueError(f"chat-jsonl is made of conversations, not of {source.table}")
    for batch in source.rows.select(LINE_COLUMNS).to_batches(max_chunksize=4096):
        yield [chat_line(row, row[SPLIT_COLUMN]) for row in batch.to_pylist()]


def export_chat_jsonl(source: Source, out: Path) -> dict[str, int]:
    """Write `source` as JSON lines to `out`; returns the lines per split."""
    out.parent.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    sizes: dict[str, int] = {}
    with out.open("wb") as stream:
        for lines in chat_lines(source):
            stream.write(encoder.encode_lines(lines))
            for line in lines:
                sizes[line.split] = sizes.get(line.split, 0) + 1
    return sizes
