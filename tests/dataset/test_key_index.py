"""The sink's key index: its answers, and its reads of the Delta table off the event loop."""

import asyncio
import threading

from dataset import store, tables
from dataset.rows import masker, message_row
from dataset.sink import key_index
from dataset.sink.key_index import KeyIndex
from tests.factories import BASE_TS, message

DAY = 86_400


def _messages_table(root: str) -> None:
    rows = [
        message_row(
            message(chat="c1", ts=BASE_TS + i, message_id=f"id-{i}"),
            late=False,
            partition=0,
            offset=i,
            mask=masker(True),
        )
        for i in range(3)
    ]
    store.write(root, "messages", store.rows_to_arrow("messages", rows))


def _index(root: str) -> KeyIndex:
    return KeyIndex(root, tables.SPECS["messages"], watermarks=True)


async def test_ids_in_the_table_or_pending_are_seen_on_any_date(tmp_path):
    root = str(tmp_path)
    _messages_table(root)
    index = _index(root)
    day = store.event_date(BASE_TS)
    assert await index.seen(day, ("c1", "id-1"))
    assert await index.seen(store.event_date(BASE_TS + 3 * DAY), ("c1", "id-1"))  # the digest, confirmed
    assert not await index.seen(day, ("c2", "id-1"))  # another chat's message
    assert await index.newest("c1", day) == BASE_TS + 2
    await index.add(day, ("c1", "id-9"), "c1", BASE_TS + 9)
    assert await index.seen(store.event_date(BASE_TS + DAY), ("c1", "id-9"))
    assert await index.newest("c1", day) == BASE_TS + 9


async def test_the_event_loop_runs_while_the_index_reads_a_partition(tmp_path, monkeypatch):
    """The read of an uncached date waits, in its thread, for a task of the loop to run: were
    the read made on the loop, that task could not run and the read would give up."""
    root = str(tmp_path)
    _messages_table(root)
    loop = asyncio.get_running_loop()
    reading = asyncio.Event()
    ticked = threading.Event()
    order: list[str] = []
    read_partition = key_index._partition

    def partition_once_the_loop_ticked(*args):
        loop.call_soon_threadsafe(reading.set)
        assert ticked.wait(30), "the event loop stood still while the index read the table"
        order.append("read")
        return read_partition(*args)

    async def tick() -> None:
        await reading.wait()
        order.append("tick")
        ticked.set()

    monkeypatch.setattr(key_index, "_partition", partition_once_the_loop_ticked)
    ticking = asyncio.create_task(tick())
    assert await _index(root).seen(store.event_date(BASE_TS), ("c1", "id-0"))  # same answer
    await ticking
    assert order == ["tick", "read"]
