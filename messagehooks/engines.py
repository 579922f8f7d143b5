"""Which broker the project starts for itself: Apache Kafka, or the embedded Tansu.

``MESSAGEHOOKS_BROKER_ENGINE`` is ``kafka``, ``tansu`` or ``auto`` (Kafka where Java 17+ and its
jars are present). With ``MESSAGEHOOKS_KAFKA_BOOTSTRAP`` set nothing is started and the cluster
is taken to be a real Kafka. `up` resolves ``auto`` once and passes the answer to its children,
so that all of them switch the Tansu workarounds the same way.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from devtools.kafka_broker import MIN_JAVA, KafkaBroker, default_libs, jars_present, java_major
from devtools.tansu import EmbeddedBroker
from messagehooks.errors import ConfigError
from messagehooks.settings import Settings

EngineName = Literal["kafka", "tansu"]
ENGINES = ("auto", "kafka", "tansu")


@dataclass(frozen=True, slots=True)
class Engine:
    """The broker engine in use and why it was chosen (logged in one line at start)."""

    name: EngineName
    reason: str


def libs_of(settings: Settings) -> Path:
    """The directory of the Kafka jars: the setting, else the one `make venv` fills."""
    return settings.kafka_libs or default_libs()


@functools.cache
def _auto(libs: Path) -> Engine:
    major = java_major()
    if major is None:
        return Engine("tansu", "auto: no java on PATH (Apache Kafka needs Java 17+)")
    if major < MIN_JAVA:
        return Engine("tansu", f"auto: Java {major} found, Apache Kafka needs Java {MIN_JAVA}+")
    if not jars_present(libs):
        return Engine("tansu", f"auto: no Apache Kafka jars in {libs} (make venv fetches them with Maven)")
    return Engine("kafka", f"auto: Java {major} and the Apache Kafka jars in {libs}")


def resolve(settings: Settings) -> Engine:
    """The engine `settings` ask for, with `auto` decided on this machine."""
    if not settings.embedded:
        return Engine("kafka", f"MESSAGEHOOKS_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}")
    if settings.broker_engine == "auto":
        return _auto(libs_of(settings))
    if settings.broker_engine in ("kafka", "tansu"):
        name: EngineName = "kafka" if settings.broker_engine == "kafka" else "tansu"
        return Engine(name, f"MESSAGEHOOKS_BROKER_ENGINE={name}")
    raise ConfigError(
        f"MESSAGEHOOKS_BROKER_ENGINE must be one of {', '.join(ENGINES)}, got {settings.broker_engine!r}"
    )


def tansu_fixes(settings: Settings) -> bool:
    """Whether the client-side Tansu workarounds apply (only to the embedded Tansu broker)."""
    return resolve(settings).name == "tansu"


OwnBroker = EmbeddedBroker | KafkaBroker


def own_broker(settings: Settings) -> OwnBroker:
    """The broker this project starts for `settings` (not started yet)."""
    if resolve(settings).name == "kafka":
        return KafkaBroker(
            settings.data_dir / "kafka",
            settings.broker_port,
            libs=libs_of(settings),
            heap=settings.kafka_heap,
        )
    return EmbeddedBroker(settings.broker_port)


def engine_env(broker: OwnBroker) -> dict[str, str]:
    """The variables that point a child process at `broker` and tell it the engine it runs on.

    A child without the engine resolves `auto` by itself (Kafka wherever Java is installed) and
    would switch the Tansu client fixes the wrong way.
    """
    return {"MESSAGEHOOKS_BROKER_PORT": str(broker.port), "MESSAGEHOOKS_BROKER_ENGINE": engine_of(broker)}


def engine_of(broker: OwnBroker) -> EngineName:
    """The engine `broker` runs."""
    return "kafka" if isinstance(broker, KafkaBroker) else "tansu"
