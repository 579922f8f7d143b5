import argparse
import asyncio
import dataclasses
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.main import PER_RUN_FLAGS, build_parser, flags, main, walk
from devtools.kafka_broker import brokers_on
from devtools.tansu import free_port
from messagehooks.settings import SETTINGS_HELP, Settings, load_settings
from tests.factories import landbot_body, landbot_message
from tests.integration.kafka_read import read_topic
from tests.integration.processes import listening_addresses


@pytest.fixture(autouse=True)
def _restore_logging():
    """`main` configures the root logger onto the (captured) stderr: undo it after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        ("up", ["HOST", "PORT", "DATA_DIR", "BROKER_PORT", "WORKER_METRICS_PORT", "SINK_METRICS_PORT"]),
        ("worker", ["DATA_DIR", "WORKER_METRICS_PORT"]),
        ("sink", ["DATA_DIR", "DATASET_URI", "SINK_METRICS_PORT"]),
        ("ingest", ["HOST", "PORT", "DATA_DIR"]),
        ("broker", ["BROKER_PORT"]),
    ],
)
def test_help_names_each_flags_env_var(command, variables, capsys):
    text = " ".join(_help(command, capsys).split())
    for variable in variables:
        assert f"[env: MESSAGEHOOKS_{variable}]" in text
        assert SETTINGS_HELP[variable].split()[0] in text


def test_every_flag_of_a_setting_names_its_env_var_and_defaults_from_it(capsys):
    """Walks every command and subcommand, so that a new flag cannot forget its variable."""
    settings = load_settings({})
    fields = {f.name for f in dataclasses.fields(Settings)}
    checked = set()
    for path, parser in walk(build_parser(settings)):
        for flag in flags(parser):
            named = re.findall(r"\[env: MESSAGEHOOKS_(\w+)\]", flag.help or "")
            if flag.dest in fields:
                assert named == [flag.dest.upper()], (path, flag.option_strings)
                assert flag.default in (getattr(settings, flag.dest), argparse.SUPPRESS), (path, flag.dest)
                checked.add(flag.dest)
            else:
                assert named == [], (path, flag.option_strings)  # names a variable that sets nothing
        if any(not re.search(r"\[env: ", flag.help or "") for flag in flags(parser)):
            assert parser.epilog == PER_RUN_FLAGS, path
            assert PER_RUN_FLAGS in parser.format_help()
    assert checked <= {name.lower() for name in SETTINGS_HELP}
    assert {"simulate_rate", "simulate_time_scale", "data_dir", "dataset_uri", "retention_hours"} <= checked


@pytest.mark.parametrize("command", ["simulate", "train", "tail", "replay"])
def test_per_run_commands_say_their_flags_have_no_env_var(command, capsys):
    assert PER_RUN_FLAGS in " ".join(_help(command, capsys).split())


def test_up_simulate_rate_defaults_from_its_env_var(monkeypatch, capsys):
    monkeypatch.setenv("MESSAGEHOOKS_SIMULATE_RATE", "2.5")
    args = build_parser(load_settings(os.environ)).parse_args(["up"])
    assert args.simulate_rate == 2.5
    assert "[env: MESSAGEHOOKS_SIMULATE_RATE]" in " ".join(_help("up", capsys).split())
    monkeypatch.setenv("MESSAGEHOOKS_SIMULATE_RATE", "-1")
    assert main(["up"]) == 2
    assert "MESSAGEHOOKS_SIMULATE_RATE must be 0 or more" in capsys.readouterr().err


def test_simulate_time_scale_defaults_from_its_env_var(monkeypatch, capsys):
    """`up`'s simulator inherits it: a demo on a faster clock (the README walk runs one)."""
    monkeypatch.setenv("MESSAGEHOOKS_SIMULATE_TIME_SCALE", "0.25")
    args = build_parser(load_settings(os.environ)).parse_args(["simulate", "--url", "http://127.0.0.1:9/"])
    assert args.simulate_time_scale == 0.25
    monkeypatch.setenv("MESSAGEHOOKS_SIMULATE_TIME_SCALE", "0")
    assert main(["simulate", "--url", "http://127.0.0.1:9/"]) == 2
    assert "MESSAGEHOOKS_SIMULATE_TIME_SCALE must be above 0" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize(
    ("hooks", "needle"),
    [
        ('[{"name": "shop", "tokns": ["s3cret"]}]', "unknown key 'tokns' (did you mean 'tokens'?)"),
        ('[{"name": "shop"}]', "hook 'shop') has no token"),
        (
            '[{"name": "shop", "token": "s3cret", "channel": [761536]}]',
            "channel must be a Landbot channel id",
        ),
    ],
    ids=["misspelled-key", "no-token", "channel-type"],
)
def test_a_bad_hook_stops_up_with_one_line_and_exit_2(hooks, needle):
    env = {**os.environ, "MESSAGEHOOKS_HOOKS": hooks, "MESSAGEHOOKS_PORT": str(free_port())}
    done = subprocess.run(
        [sys.executable, "-m", "messagehooks", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr  # nothing was started, nothing else was said
    assert done.stderr.startswith("messagehooks: error: MESSAGEHOOKS_HOOKS[0] (hook 'shop')")
    assert needle in done.stderr
    assert "s3cret" not in done.stderr


def test_help_never_echoes_a_token(monkeypatch, capsys):
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", '[{"name": "a", "token": "very-secret-token"}]')
    assert "very-secret-token" not in _help("up", capsys)


def test_config_error_is_one_line_not_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("MESSAGEHOOKS_PARTITIONS", "many")
    assert main(["ingest"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("messagehooks: error: ")
    assert "MESSAGEHOOKS_PARTITIONS" in err
    assert "Traceback" not in err


def test_tail_of_an_unknown_topic_is_a_clear_error(capsys):
    assert main(["tail", "nope"]) == 2
    assert "unknown topic 'nope'" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize("command", [["tail", "messages", "--max", "1"], ["topics"]], ids=["tail", "topics"])
def test_no_broker_is_one_error_line_and_exit_2(command):
    env = {**os.environ, "MESSAGEHOOKS_BROKER_PORT": str(free_port())}  # nothing listens there
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    done = subprocess.run(
        [sys.executable, "-m", "messagehooks", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("messagehooks: error: cannot reach the broker at 127.0.0.1:")
    assert "Traceback" not in done.stderr


def _dataset_stats(data_dir: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "messagehooks", "dataset", "--data-dir", str(data_dir), "stats"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out)


@pytest.mark.integration
def test_up_serves_writes_the_dataset_and_ctrl_c_stops_everything(engine, tmp_path):
    port, broker_port = free_port(), free_port()
    env = {**os.environ, "MESSAGEHOOKS_PORT": str(port), "MESSAGEHOOKS_BROKER_PORT": str(broker_port)}
    env["MESSAGEHOOKS_BROKER_ENGINE"] = engine
    env.pop("MESSAGEHOOKS_KAFKA_BOOTSTRAP", None)
    # Free metrics ports too: `up` refuses taken ones, and parallel runs would share 9101/9102.
    env["MESSAGEHOOKS_WORKER_METRICS_PORT"] = str(free_port())
    env["MESSAGEHOOKS_SINK_METRICS_PORT"] = str(free_port())
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "messagehooks", "up", "--no-simulate",
             "--data-dir", str(tmp_path / "fresh" / "data")],
            env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # the kafka engine starts a JVM first
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        # Bot, customer, bot, bot, 20 s apart in event time: the third message is sealed past the
        # default 10 s lateness, which completes the customer's turn: one pair from up's worker.
        now = time.time()
        for offset, sender in enumerate(("bot", "customer", "bot", "bot")):
            ts = now - 60 + 20 * offset
            message = landbot_message(chat=77, sender_type=sender, ts=ts, uuid=f"up-{offset}")
            response = httpx.post(f"http://127.0.0.1:{port}/hooks/default", json=landbot_body(message))
            assert response.status_code == 200
        bootstrap = f"127.0.0.1:{broker_port}"
        (pair,) = asyncio.run(read_topic(bootstrap, "landbot.turn-pairs", expect=1, timeout=60))
        assert (pair["prompt_role"], pair["response_role"], pair["chat_id"]) == ("bot", "customer", "77")
        # ... and up's dataset sink commits the messages and the pair to Delta.
        deadline = time.monotonic() + 60
        tables = _dataset_stats(tmp_path / "fresh" / "data")["tables"]
        while (tables["messages"]["rows"], tables["turn_pairs"]["rows"]) != (
            4,
            1,
        ) and time.monotonic() < deadline:
            time.sleep(0.2)
            tables = _dataset_stats(tmp_path / "fresh" / "data")["tables"]
        assert (tables["messages"]["rows"], tables["turn_pairs"]["rows"]) == (4, 1)
        children = subprocess.run(["pgrep", "-g", str(up.pid)], capture_output=True, text=True).stdout
        assert children  # the supervisor's own group; its children live in their own groups
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0  # Kafka flushes its log on the way out
        assert "messagehooks is up" in log_path.read_text()
        assert "status: requests/s" in log_path.read_text()  # the status line, without a terminal
        for pid_line in subprocess.run(
            ["pgrep", "-f", f"{broker_port}"], capture_output=True, text=True
        ).stdout.split():
            pytest.fail(f"process {pid_line} still runs the broker on port {broker_port}")
        assert listening_addresses(broker_port) == set()  # no broker of either engine is left
        assert brokers_on(tmp_path / "fresh" / "data" / "kafka" / "server.properties") == []
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)  # the supervisor stops its children
            try:
                up.wait(60)
            except subprocess.TimeoutExpired:
                up.kill()  # its children die with it (PR_SET_PDEATHSIG)
                up.wait()
