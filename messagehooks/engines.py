"""Which broker the project starts for itself: Apache Kafka, or the embedded Tansu.

``MESSAGEHOOKS_BROKER_ENGINE`` is ``kafka``, ``tansu`` or ``auto`` (Kafka where Java 17+ and its
jars are present). With ``MESSAGEHOOKS_KAFKA_BOOTSTRAP`` set nothing is started and the cluster
is taken to be a real Kafka. `up` resolves ``auto`` once and passes the answer to its children,
so that all of them switch the Tansu workarounds the same way.
"""

import functools
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from messagehooks.errors import ConfigError
from messagehooks.settings import Settings

EngineName = Literal["kafka", "tansu"]
ENGINES = ("auto", "kafka", "tansu")

KAFKA_VERSION = "4.1.1"
"""The broker version kafka/pom.xml resolves (docker-compose.yml runs the same)."""

MIN_JAVA = 17


def default_libs() -> Path:
    """Where `make venv` puts the broker's jars: beside the interpreter of this environment."""
    return Path(sys.prefix) / "kafka" / "libs"


def java_major(java: str = "java") -> int | None:
    """The major version of `java` on the PATH (None if there is none or it does not answer)."""
    path = shutil.which(java)
    if path is None:
        return None
    try:
        answer = subprocess.run(  # noqa: S603 - the java found on PATH, fixed argv
            [path, "-version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', answer.stderr + answer.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def jars_present(libs: Path) -> bool:
    """Whether `libs` holds the broker's jars (the Kafka server jar names the version)."""
    return (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()


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
