"""Brokers of either engine for tests: settings that reach them, and brokers a test runs itself.

The session brokers of tests/conftest.py cannot be stopped by one test; a test about an outage
takes conftest's `engine` fixture (each engine in turn) and starts its own with `own_broker`.
"""

from pathlib import Path
from typing import Any

from devtools.brokers import engine_of
from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker
from messagehooks.settings import Settings

ENGINES = ("tansu", "kafka")


def own_broker(engine: str, port: int, home: Path) -> EmbeddedBroker | KafkaBroker:
    """A broker of `engine` on `port`, not started yet.

    Tansu keeps nothing: each start is an empty new cluster. Kafka keeps its log under `home`:
    a start on the same `home` is the same cluster again, with its topics and records.
    """
    if engine == "kafka":
        return KafkaBroker(home, port)
    return EmbeddedBroker(port)


def durable(broker: EmbeddedBroker | KafkaBroker) -> bool:
    """Whether `broker` keeps its records across a restart (Kafka does, Tansu does not)."""
    return isinstance(broker, KafkaBroker)


def own_settings(broker: EmbeddedBroker | KafkaBroker, **overrides: Any) -> Settings:
    """Settings of an in-process component on `broker`, as `up` gives its children.

    The project's own broker of that engine on its port: the Tansu-only client fixes apply on
    Tansu only. (With `kafka_bootstrap` the cluster is taken for a real Kafka, fixes off, even
    when Tansu answers: a sink then trusted Tansu's wrong end offsets and read everything again.)
    """
    return Settings(broker_port=broker.port, broker_engine=engine_of(broker), **overrides)
