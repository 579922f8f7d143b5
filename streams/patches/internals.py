"""Private Faust and aiokafka state the agents read or set (no class is changed here).

Faust 0.15.3 has no public way to give a table our serializers, to read the offsets its
consumer committed, or to make its producer track a topic; these do it through the private
code of the pinned releases (`streams.patches.pins`), so that no other module touches it.
"""

from collections.abc import Mapping
from typing import Any

import faust
from aiokafka import TopicPartition


def use_serializers(table: Any, *, key: str, value: str) -> None:
    """Give a Faust table the serializers `key` and `value`, its changelog topic included.

    ``App.Table()`` takes no serializers: it derives "json" from the types, and builds its
    changelog topic (which decodes records in recovery) with them at once. Set ours and rebuild
    that topic with faust 0.15.3 ``Table._new_changelog_topic``; the store is created lazily
    from the same attributes.
    """
    table.key_serializer = key
    table.value_serializer = value
    table.schema = faust.Schema(key_serializer=key, value_serializer=value)
    table.changelog_topic = table._new_changelog_topic()


def committed_offsets(consumer: Any) -> Mapping[TopicPartition, int]:
    """The offsets Faust's consumer last committed, per partition (faust 0.15.3 internal).

    Empty if the consumer keeps none (yet): the caller then knows no position.
    """
    committed: Mapping[TopicPartition, int] = getattr(consumer, "_committed_offset", {})
    return committed


async def track_table_topic(producer: Any, topic: str) -> None:
    """Keep `topic` (a table's changelog) in the Faust producer's metadata from now on.

    faust-streaming 0.15.3 ``Producer.key_partition``, which a table with ``use_partitioner``
    calls on every write, reads aiokafka's cached metadata and never fetches it. aiokafka 0.14.0
    caches every topic until the producer sends to one the cache lacks (an output topic created
    after the worker started); from then on it refreshes only the topics asked for by name, and
    the changelog dropped out: every state write failed with TypeError, the agent crashed, and
    the idle timer's write crashed the worker (any broker; tests/streams/test_late_topics.py).

    Args:
        producer: the Faust app's producer (``app.producer``), started.
        topic: the topic to track.
    """
    aiokafka_producer = producer._ensure_producer()
    await aiokafka_producer.client.add_topic(topic)  # refreshed with the others from now on
    await aiokafka_producer.partitions_for(topic)  # returns once the topic is in the cache
