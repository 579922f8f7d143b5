"""Where the ingest's records go: Kafka with acks=all, or the durable spool when it cannot.

`KafkaPublisher.publish` returns only when every record is durable: acknowledged by Kafka
("acked") or fsynced in the spool ("spooled"). While the spool holds records, new requests go
to the spool too, so records reach Kafka in the order they were accepted. A background task
forwards the spool when the broker answers again, re-creating topics if the broker is new.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from typing import Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.metrics import IngestMetrics
from ingest.spool import Spool
from ingest.spool_recovery import open_spool
from messagehooks.errors import SpoolUnavailable
from messagehooks.kafka import ProducerRecord, durable_producer, ensure_project_topics, topics_present
from messagehooks.settings import Settings

logger = logging.getLogger(__name__)

Delivery = Literal["acked", "spooled"]
Readiness = Literal["ready", "degraded"]

_FORWARD_BATCH = 500
_PROBE_INTERVAL = 0.5
_SPOOL_ERROR_SHOWN = 10.0
"""Seconds /readyz reports a refused spool write (no later write may come to clear it)."""


class Publisher(Protocol):
    """The seam between routes and Kafka (tests inject `InMemoryPublisher`)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, records: Sequence[ProducerRecord]) -> Delivery: ...

    def readiness(self) -> tuple[Readiness, str]: ...


class InMemoryPublisher:
    """Keeps records in a list; for tests of routes that need no broker."""

    def __init__(self) -> None:
        self.records: list[ProducerRecord] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, records: Sequence[ProducerRecord]) -> Delivery:
        self.records.extend(records)
        return "acked"

    def readiness(self) -> tuple[Readiness, str]:
        return "ready", "in-memory publisher"


class KafkaPublisher:
    """Produces to Kafka, falls back to the spool, and forwards the spool in the background."""

    def __init__(self, settings: Settings, metrics: IngestMetrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._spool: Spool | None = None
        self._producer: AIOKafkaProducer | None = None
        self._broker_ok = False
        self._topics_ok = False
        self._wake = asyncio.Event()
        self._forwarder: asyncio.Task[None] | None = None
        self._spool_lock = asyncio.Lock()
        self._spool_error: str | None = None
        self._spool_failed_at = 0.0

    @property
    def spool(self) -> Spool:
        if self._spool is None:
            raise RuntimeError("publisher not started")
        return self._spool

    async def start(self) -> None:
        self._spool = await asyncio.to_thread(open_spool, self._settings.spool_path)
        self._metrics.spool_depth.set(self._spool.depth)
        if self._spool.depth:
            logger.warning("spool holds records from a previous run", extra={"depth": self._spool.depth})
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await self._connect()
        self._forwarder = asyncio.create_task(self._forward_forever(), name="spool-forwarder")

    async def stop(self) -> None:
        if self._forwarder is not None:
            self._forwarder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forwarder
        if self._producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await self._producer.stop()
        if self._spool is not None:
            await asyncio.to_thread(self._spool.close)

    def readiness(self) -> tuple[Readiness, str]:
        if self._spool_error is not None and time.monotonic() - self._spool_failed_at < _SPOOL_ERROR_SHOWN:
            return "degraded", f"the spool cannot store requests ({self._spool_error}): answering 503"
        if not self._broker_ok:
            return "degraded", "broker unreachable: requests are spooled to disk"
        if not self._topics_ok:
            return "degraded", "topics missing on the broker"
        if self.spool.depth:
            return "degraded", f"forwarding {self.spool.depth} spooled records"
        return "ready", "broker reachable, topics present"

    async def publish(self, records: Sequence[ProducerRecord]) -> Delivery:
        if self._producer is not None and self._broker_ok and not self.spool.depth:
            try:
                await self._produce(records, self._settings.produce_timeout)
            except (KafkaError, OSError, TimeoutError) as exc:
                self._broker_ok = False
                logger.warning("produce failed, spooling", extra={"error": type(exc).__name__})
            else:
                self._spool_error = None  # Kafka takes requests: the spool is not needed
                return "acked"
        await self._append_to_spool(records)
        return "spooled"

    async def _append_to_spool(self, records: Sequence[ProducerRecord]) -> None:
        # One writer at a time keeps the spool's order equal to the order of acceptance.
        async with self._spool_lock:
            try:
                await asyncio.to_thread(self.spool.append, records)
            except (sqlite3.Error, OSError) as exc:
                self._spool_error = f"{type(exc).__name__}: {exc}"
                self._spool_failed_at = time.monotonic()
                logger.error(
                    "spool write failed: answering 503",
                    extra={"error": self._spool_error, "spool": str(self.spool.path)},
                )
                raise SpoolUnavailable(
                    f"the broker did not take the request and the spool could not store it ({exc}); "
                    "nothing was accepted: retry later"
                ) from exc
            self._spool_error = None
        self._metrics.spool_depth.set(self.spool.depth)
        self._wake.set()

    async def _produce(self, records: Sequence[ProducerRecord], timeout: float) -> None:
        producer = self._producer
        if producer is None:
            raise KafkaError("producer not connected")
        started = time.perf_counter()
        async with asyncio.timeout(timeout):
            futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
            await asyncio.gather(*futures)
        self._metrics.produce_seconds.observe(time.perf_counter() - started)

    async def _connect(self) -> None:
        if self._producer is None:
            producer = durable_producer(self._settings)
            try:
                async with asyncio.timeout(self._settings.produce_timeout):
                    await producer.start()
            except (KafkaError, OSError, TimeoutError, asyncio.CancelledError):
                # Close what start() opened and raise on: a cancelled start still ends its task.
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
                raise
            self._producer = producer
        await self._probe()
        if self._broker_ok and not self._topics_ok:
            # A fresh broker (the embedded one keeps nothing across restarts) has no topics.
            await ensure_project_topics(self._settings)
            await self._probe()

    async def _probe(self) -> None:
        if self._producer is None:
            self._broker_ok = self._topics_ok = False
            return
        self._topics_ok = await topics_present(self._producer, self._settings.topics.all(), timeout=2.0)
        # A metadata answer, even without our topics, means the broker is reachable.
        self._broker_ok = self._topics_ok or await topics_present(self._producer, (), timeout=2.0)

    async def _forward_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_PROBE_INTERVAL):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self._connect()
                if self._broker_ok and self._topics_ok:
                    await self._forward_spool()
            except (KafkaError, OSError, TimeoutError) as exc:
                self._broker_ok = False
                logger.warning("broker unavailable", extra={"error": type(exc).__name__})
            except sqlite3.Error as exc:  # a full disk refuses even the delete: retry, never stop
                logger.error("spool forwarding failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def _forward_spool(self) -> None:
        while self.spool.depth:
            batch = await asyncio.to_thread(self.spool.peek, _FORWARD_BATCH)
            if not batch:
                return
            await self._produce([record for _, record in batch], timeout=30.0)
            await asyncio.to_thread(self.spool.remove_through, batch[-1][0])
            self._metrics.spool_depth.set(self.spool.depth)
            logger.info("forwarded spooled records", extra={"count": len(batch), "left": self.spool.depth})
