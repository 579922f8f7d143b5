"""Kafka clients configured for this project: producer settings, topic creation, probes, reads.

Producer settings: acks=all, linger 0 and 64 KiB batches on the request path (measured:
docs/BENCHMARKS.md); idempotence on Apache Kafka only (Tansu answers aiokafka's InitProducerId
with an unknown error, so the producer could not start there).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from messagehooks.engines import tansu_fixes
from messagehooks.errors import BrokerUnavailable, ConfigError
from messagehooks.settings import Settings

logger = logging.getLogger(__name__)

MAX_RECORD_BYTES = 1_000_000
"""Largest record value the ingest produces: under the producer's request size and Kafka's
default `message.max.bytes` (1 MiB), with room for the key, headers and batch overhead."""

PRODUCER_SETTINGS: dict[str, Any] = {
    "max_request_size": 1_048_576,
    "acks": "all",
    "enable_idempotence": False,
    "linger_ms": 0,
    "max_batch_size": 65536,
    "request_timeout_ms": 10_000,
}


@dataclass(frozen=True, slots=True)
class ProducerRecord:
    """One Kafka record to produce: the ingest's unit of publishing and spooling."""

    topic: str
    key: bytes | None
    value: bytes


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """An unstarted producer with the project's durable settings (no idempotence: see `durable_producer`)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id="messagehooks", **{**PRODUCER_SETTINGS, **overrides}
    )


def durable_producer(settings: Settings) -> AIOKafkaProducer:
    """The ingest's producer, with `engine_producer_settings`."""
    return make_producer(settings.bootstrap, **engine_producer_settings(settings))


def engine_producer_settings(settings: Settings) -> dict[str, Any]:
    """Idempotent (no duplicate or reordered batch when a send is retried) except on Tansu."""
    return {"enable_idempotence": not tansu_fixes(settings)}


async def ensure_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int, replication_factor: int = 1
) -> list[str]:
    """Create the missing topics (idempotent); returns the names it created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="messagehooks-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in names if name not in existing]
        if missing:
            new = [NewTopic(n, partitions, replication_factor) for n in missing]
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another replica of the ingest created them first
            logger.info("created topics", extra={"topics": missing, "partitions": partitions})
        return missing
    finally:
        await admin.close()


@contextlib.contextmanager
def broker_reached(bootstrap: str) -> Iterator[None]:
    """For a command: a broker it cannot reach is one `BrokerUnavailable` line, not a traceback.

    aiokafka logs each failed connection itself; quiet meanwhile, as the error says it all.
    """
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(
            f"cannot reach the broker at {bootstrap} ({type(exc).__name__}): start it "
            "(`messagehooks broker`) or set MESSAGEHOOKS_KAFKA_BOOTSTRAP to a running one"
        ) from exc
    finally:
        logger.setLevel(level)


async def ensure_project_topics(settings: Settings) -> list[str]:
    """Create the project's topics (docs/topics.md) with the configured partitions."""
    return await ensure_topics(
        settings.bootstrap,
        settings.topics.all(),
        partitions=settings.partitions,
        replication_factor=settings.replication_factor,
    )


async def topics_present(producer: AIOKafkaProducer, names: Iterable[str], timeout: float) -> bool:
    """True if the broker answers a metadata request listing every topic in `names`."""
    try:
        async with asyncio.timeout(timeout):
            cluster = await producer.client.fetch_all_metadata()
    except (TimeoutError, KafkaError, OSError):
        return False
    known = cluster.topics()
    return all(name in known for name in names)


async def topic_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of `topic` ([] if it does not exist), from a Metadata request for all topics.

    A consumer's own metadata lists only topics it subscribed to on Apache Kafka (Tansu answers
    with every topic), and a Metadata request naming the topic would create it on Tansu.
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    return [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or ())]


class TopicIncarnations:
    """Tells which incarnation of each topic a cluster serves now: ``{cluster id}/{topic id}``.

    Offsets only mean something within one incarnation of a topic: a topic deleted and created
    again, a fresh in-memory broker or another cluster starts its offsets at 0 again. Kafka gives
    every topic a random id when it is created (Metadata v10+, KIP-516) and every cluster an id
    when its storage is formatted; the embedded broker is started with a fresh cluster id each
    time. aiokafka speaks Metadata only up to v5 (no topic ids), so this asks through
    librdkafka's admin client. Blocking: call it in a thread.
    """

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self._timeout = timeout
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": "messagehooks-incarnations",
            # librdkafka logs idle disconnects to stderr: route its lines to logging instead.
            "logger": logging.getLogger("messagehooks.librdkafka"),
        }
        self._admin = AdminClient(config)

    def lookup(self, topics: Iterable[str]) -> dict[str, str | None]:
        """Each topic's incarnation, or None for a topic the cluster does not have (now).

        Raises:
            KafkaException: the cluster did not answer within the timeout.
        """
        names = sorted(set(topics))
        cluster = self._admin.describe_cluster(request_timeout=self._timeout).result().cluster_id
        futures = self._admin.describe_topics(TopicCollection(names), request_timeout=self._timeout)
        found: dict[str, str | None] = {}
        for name, future in futures.items():
            try:
                found[name] = f"{cluster}/{future.result().topic_id}"
            except KafkaException as exc:
                if exc.args[0].code() != ConfluentError.UNKNOWN_TOPIC_OR_PART:
                    raise
                found[name] = None
        return found


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], embedded: bool
) -> dict[TopicPartition, int]:
    """The true end offset (last offset + 1) of each assigned partition.

    Tansu 0.6 answers ListOffsets(LATEST) with the base offset of the last *batch* + 1, not the
    last offset + 1; a Fetch response's high watermark is right. On the embedded broker, fetch
    from just below the reported offset and read the high watermark. The caller must have
    assigned `partitions` to `consumer`; its positions are left wherever the fetch ended.
    """
    reported: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
    if not embedded:
        return reported
    probing = {tp: offset for tp, offset in reported.items() if offset > 0}
    for tp, offset in probing.items():
        consumer.seek(tp, offset - 1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while loop.time() < deadline and any(consumer.highwater(tp) is None for tp in probing):
        await consumer.getmany(*probing, timeout_ms=200)
    return {tp: consumer.highwater(tp) or offset for tp, offset in reported.items()}


@contextlib.asynccontextmanager
async def topic_reader(
    settings: Settings, topic: str
) -> AsyncIterator[tuple[AIOKafkaConsumer, list[TopicPartition]]]:
    """A started consumer assigned every partition of `topic`: no group, nothing committed.

    For a command that reads a topic (`tail`, `backfill`); positions are the caller's to seek.

    Raises:
        BrokerUnavailable: the broker cannot be reached.
        ConfigError: `topic` does not exist on the broker.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, group_id=None)
    try:
        with broker_reached(settings.bootstrap):
            await consumer.start()
            partitions = await topic_partitions(settings.bootstrap, topic)
        if not partitions:
            raise ConfigError(f"topic {topic!r} does not exist on {settings.bootstrap}")
        consumer.assign(partitions)
        yield consumer, partitions
    finally:
        await consumer.stop()


async def seek_to_start(consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]) -> None:
    """Position each partition at its first offset, for certain.

    Not `seek_to_beginning`: after `assign`, aiokafka resets positions to the latest offset in the
    background, and a LATEST answer arriving after seek_to_beginning's reset was asked for is
    applied to it (aiokafka 0.14 checks only that a reset is awaited, not which): the read then
    starts at the end and waits for ever. A `seek` to the offsets asked for here is never undone.
    """
    for tp, offset in (await consumer.beginning_offsets(list(partitions))).items():
        consumer.seek(tp, offset)
