"""The broker a benchmark runs on (`--engine tansu|kafka`) and how its processes reach it.

The broker is started by the project's own `own_broker`, as `messagehooks up` starts it; Kafka
keeps its log in a temporary directory removed afterwards. Every process a benchmark starts gets
`MESSAGEHOOKS_BROKER_ENGINE` of that engine: without it a child resolves `auto` on its own (Kafka
wherever Java is installed) and would switch the Tansu client fixes the wrong way.
"""

import argparse
import contextlib
import dataclasses
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.brokers import OwnBroker, own_broker
from devtools.brokers import engine_env as broker_env
from devtools.tansu import free_port
from messagehooks.engines import resolve
from messagehooks.settings import Settings, load_settings

__all__ = ["ENGINES", "add_engine_option", "broker_env", "broker_settings", "started_broker", "unavailable"]

ENGINES = ("tansu", "kafka")
DEFAULT_ENGINE = "tansu"


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    """`--engine`: which broker the benchmark starts (Tansu unless told)."""
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="broker engine: tansu (embedded, in memory) or kafka (Apache Kafka, needs Java 17+ and jars)",
    )


def local_settings(**fields: Any) -> Settings:
    """This environment's settings (Kafka's jars and heap among them) for a broker started here."""
    return dataclasses.replace(load_settings(), kafka_bootstrap=None, **fields)


def unavailable(engine: str) -> str | None:
    """Why `engine` cannot run on this machine (None: it can)."""
    if engine == "tansu":
        return None
    found = resolve(local_settings(broker_engine="auto"))
    return None if found.name == engine else found.reason


@contextlib.contextmanager
def started_broker(engine: str) -> Iterator[OwnBroker]:
    """A fresh broker of `engine` on a free port, stopped (and its log removed) on exit."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{engine}-") as home:
        settings = local_settings(broker_engine=engine, broker_port=free_port(), data_dir=Path(home))
        with own_broker(settings) as broker:
            yield broker


def broker_settings(broker: OwnBroker, **fields: Any) -> Settings:
    """Settings for clients in this process: those a child given `broker_env` loads, plus `fields`."""
    return dataclasses.replace(load_settings(broker_env(broker)), **fields)
