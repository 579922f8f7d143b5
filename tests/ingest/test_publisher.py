"""`KafkaPublisher` without a broker: a producer that fails to start is closed, the error raised on."""

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from ingest import publisher
from ingest.metrics import IngestMetrics
from messagehooks.settings import Settings


class _FailingProducer:
    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.stopped = False

    async def start(self) -> None:
        raise self.error

    async def stop(self) -> None:
        self.stopped = True


@pytest.mark.parametrize(
    "error", [KafkaConnectionError(), OSError("refused"), TimeoutError(), asyncio.CancelledError()]
)
async def test_a_failed_or_cancelled_start_stops_the_producer_and_raises_on(monkeypatch, error):
    producer = _FailingProducer(error)
    monkeypatch.setattr(publisher, "durable_producer", lambda settings: producer)
    kafka = publisher.KafkaPublisher(Settings(), IngestMetrics())
    with pytest.raises(type(error)):
        await kafka._connect()
    assert producer.stopped
