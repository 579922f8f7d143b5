"""docker-compose.yml and the Dockerfile, checked without a Docker engine (none runs here).

What cannot be checked here: that the images build and the stack starts, that Apache Kafka's
healthcheck passes, and the stack's behaviour under Docker networking. Everything the files
say about this project is checked against the code.
"""

import json
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from cli.main import build_parser
from devtools.kafka_broker import BROKER_PROPERTIES, KafkaBroker
from devtools.tansu import free_port
from messagehooks.engines import KAFKA_VERSION
from messagehooks.settings import ENV_PREFIX, SETTINGS_HELP, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OURS = [
    name
    for name, service in COMPOSE["services"].items()
    if service.get("image", "").startswith("messagehooks:")
]


def _subcommands() -> set[str]:
    parser = build_parser(Settings())
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return set(commands.choices)


def _substituted(value: str, variables: dict[str, str] | None = None) -> str:
    """A compose value with ${VAR:-default} replaced as `docker compose` does in an environment of
    `variables` (none: every default)."""
    given = variables or {}
    return re.sub(r"\$\{([A-Z_]+):-([^}]*)\}", lambda m: given.get(m[1]) or m[2], value)


def test_compose_runs_the_kafka_version_and_settings_the_tests_run():
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    pom = (ROOT / "kafka" / "pom.xml").read_text()
    assert f"<kafka.version>{KAFKA_VERSION}</kafka.version>" in pom
    environment = {key: str(value) for key, value in kafka["environment"].items()}
    for key, value in BROKER_PROPERTIES.items():
        # The apache/kafka image maps KAFKA_A_B to a.b (and __ to _, ___ to -).
        variable = "KAFKA_" + key.upper().replace("-", "___").replace(".", "_")
        assert environment.get(variable) == value, variable
    assert f"-Xmx{KafkaBroker(ROOT).heap}" in environment["KAFKA_HEAP_OPTS"]


def test_the_stack_has_kafka_topics_ingest_worker_sink_and_an_optional_ui():
    services = COMPOSE["services"]
    assert set(OURS) == {"topics", "ingest", "worker", "sink"}
    assert services["kafka-ui"]["profiles"] == ["ui"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert "kafka-data:/var/lib/kafka/data" in services["kafka"]["volumes"]
    assert set(COMPOSE["volumes"]) == {"kafka-data", "spool", "dataset"}
    assert services["ingest"]["ports"] == ["8000:8000"]


@pytest.mark.parametrize("service", OURS)
def test_every_command_is_a_messagehooks_subcommand(service):
    command = COMPOSE["services"][service]["command"]
    assert command[0] in _subcommands()
    build_parser(Settings()).parse_args(command)  # arguments are valid too


@pytest.mark.parametrize("service", OURS)
def test_every_variable_is_a_known_setting_and_loads(service):
    environment = {k: _substituted(str(v)) for k, v in COMPOSE["services"][service]["environment"].items()}
    names = {k.removeprefix(ENV_PREFIX) for k in environment if k.startswith(ENV_PREFIX)}
    assert names <= set(SETTINGS_HELP), names - set(SETTINGS_HELP)
    settings = load_settings(environment)
    assert settings.bootstrap == "kafka:9092"
    assert settings.session_timeout >= 6  # Apache Kafka's group.min.session.timeout.ms


def _compose_ingest(tmp_path: Path, **variables: str) -> tuple[subprocess.Popen[bytes], int]:
    """The stack's ingest command with its environment (what `docker compose up` gives it when
    `variables` is the user's environment), kept on loopback and off Kafka (an unused port).
    Returns the process (output in tmp_path/ingest.log) and its port."""
    service = COMPOSE["services"]["ingest"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({k: _substituted(str(v), variables) for k, v in service["environment"].items()})
    port = free_port()
    env.update(
        MESSAGEHOOKS_HOST="127.0.0.1",
        MESSAGEHOOKS_PORT=str(port),
        MESSAGEHOOKS_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
        MESSAGEHOOKS_DATA_DIR=str(tmp_path),
    )
    with (tmp_path / "ingest.log").open("wb") as log:
        command = [sys.executable, "-m", "messagehooks", *service["command"]]
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), port


@pytest.mark.integration
def test_the_stack_refuses_to_start_the_ingest_without_hooks(tmp_path):
    process, _ = _compose_ingest(tmp_path)
    assert process.wait(60) == 2
    output = (tmp_path / "ingest.log").read_text()
    assert "MESSAGEHOOKS_DEV_HOOK is false" in output
    assert "MESSAGEHOOKS_DEV_HOOK=true" in output  # says how to ask for the dev hook


@pytest.mark.integration
@pytest.mark.parametrize(
    "variables",
    [{"MESSAGEHOOKS_DEV_HOOK": "true"}, {"MESSAGEHOOKS_HOOKS": '[{"name": "shop", "tokens": ["t-1234"]}]'}],
    ids=["dev-hook-asked-for", "hooks-set"],
)
def test_the_stack_starts_the_ingest_with_hooks_or_the_dev_hook_asked_for(tmp_path, variables):
    process, port = _compose_ingest(tmp_path, **variables)
    settings = load_settings(variables)
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert process.poll() is None, (tmp_path / "ingest.log").read_text()
        hook = settings.hooks[0].name
        answer = httpx.post(f"http://127.0.0.1:{port}/hooks/{hook}", content=b"{}", timeout=10)
        # The open dev hook takes the request without a token (and refuses its empty envelope);
        # a hook with tokens refuses it unauthenticated.
        assert answer.status_code == (401 if settings.hooks_configured else 422), answer.text
        warned = "accepts any request without a token" in (tmp_path / "ingest.log").read_text()
        assert warned == (not settings.hooks_configured)
    finally:
        process.terminate()
        process.wait(30)


def test_images_are_pinned_and_dependencies_wait_for_health():
    for name, service in COMPOSE["services"].items():
        image = service["image"]
        assert ":" in image, name
        assert not image.endswith(":latest"), name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}, (
                name,
                dependency,
            )
    assert (
        COMPOSE["services"]["ingest"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    )
    assert all("healthcheck" in COMPOSE["services"][name] for name in ("kafka", "ingest", "worker", "sink"))


def test_dockerfile_base_image_entry_point_and_packages_match_the_project():
    (base,) = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    entrypoint = json.loads(re.search(r"^ENTRYPOINT (.+)$", DOCKERFILE, re.MULTILINE).group(1))
    assert entrypoint == list(PYPROJECT["project"]["scripts"])  # the console script
    cmd = json.loads(re.search(r"^CMD (.+)$", DOCKERFILE, re.MULTILINE).group(1))
    assert cmd[0] in _subcommands()
    copied = set(re.findall(r"^COPY (\w+) \./", DOCKERFILE, re.MULTILINE))
    assert copied == set(PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert PYPROJECT["project"]["requires-python"].startswith(">=3.11")
    # Not root, and numeric (hadolint DL3066): the uid useradd gives the image's user.
    user = re.search(r"^USER (.+)$", DOCKERFILE, re.MULTILINE).group(1)
    assert user != "0"
    assert re.search(rf"useradd .*--uid {re.escape(user)} messagehooks", DOCKERFILE)


@pytest.mark.integration
def test_the_topics_command_the_stack_runs_first_creates_every_topic(broker, unique, monkeypatch, capsys):
    import asyncio

    from cli.main import main
    from messagehooks.kafka import make_producer, topics_present

    async def present(names: list[str]) -> bool:
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            return await topics_present(producer, names, 10)
        finally:
            await producer.stop()

    monkeypatch.setenv("MESSAGEHOOKS_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("MESSAGEHOOKS_TOPIC_PREFIX", f"dep{unique}.")
    assert main(["topics"]) == 0
    assert main(["topics"]) == 0  # idempotent, as a re-run of `docker compose up` needs
    settings = load_settings(
        {"MESSAGEHOOKS_KAFKA_BOOTSTRAP": broker.bootstrap, "MESSAGEHOOKS_TOPIC_PREFIX": f"dep{unique}."}
    )
    assert asyncio.run(present(settings.topics.all()))
    assert "0 created now" in capsys.readouterr().err.splitlines()[-1]
