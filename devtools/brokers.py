"""The broker this project starts for itself, of the engine the settings resolve to."""

from devtools.kafka_broker import KafkaBroker
from devtools.tansu import EmbeddedBroker
from messagehooks.engines import EngineName, libs_of, resolve
from messagehooks.settings import Settings

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
