"""A running sink whose table's log is torn under it stops with `TableCorrupt`, naming the file."""

import asyncio
import time
from pathlib import Path

import pytest

from dataset import store
from dataset.sink import DatasetSink
from tests.dataset.test_sink import MESSAGES, _ids, _message_records, _produce, settings  # noqa: F401 - `settings` is a fixture, used by name

pytestmark = pytest.mark.integration


async def test_a_log_torn_while_the_sink_runs_stops_it_naming_the_file(settings, monkeypatch):  # noqa: F811 - the imported fixture
    await _produce(settings, _message_records(settings, MESSAGES))
    real_write = store.write
    torn: list[Path] = []

    def write_tearing_the_log(root, table, data, **kwargs):
        if table == "messages" and not torn and len(_ids(settings)) >= MESSAGES:
            # A disk fault cuts the newest commit in half before the next commit reads the log
            # (once the first MESSAGES rows are in: the sink may commit them in several versions).
            log = Path(store.table_uri(root, table)) / "_delta_log"
            newest = max(log.glob("*.json"))
            newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
            torn.append(newest)
        return real_write(root, table, data, **kwargs)

    monkeypatch.setattr(store, "write", write_tearing_the_log)
    sink = DatasetSink(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(stop))
    deadline = time.monotonic() + 30
    while not task.done() and len(_ids(settings)) < MESSAGES and time.monotonic() < deadline:
        await asyncio.wait([task], timeout=0.1)
    assert len(_ids(settings)) == MESSAGES  # the commits before the fault are whole
    await _produce(settings, _message_records(settings, 10, start=MESSAGES))
    await asyncio.wait([task], timeout=60)
    stop.set()  # still running after a minute: the assertion below fails, the sink stops
    with pytest.raises(store.TableCorrupt) as stopped:
        await asyncio.wait_for(task, 30)
    assert torn
    assert str(torn[0]) in str(stopped.value)
    assert "'messages'" in str(stopped.value)
