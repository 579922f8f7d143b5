"""`up` with simulated traffic: a short conversation gap (unless one is set) that every child shares."""

import json
import os
from typing import Any

from cli import supervisor
from cli.devtool_commands import simulator_token
from cli.main import build_parser
from cli.status import Status
from cli.supervisor import (
    DEMO_CONVERSATION_GAP,
    _simulate_args,
    child_environment,
    with_conversation_gap,
)
from messagehooks.settings import SETTINGS_HELP, Hook, Settings, load_settings

GAP = "MESSAGEHOOKS_CONVERSATION_GAP"


def test_simulated_traffic_gets_the_demo_gap_and_every_child_gets_it():
    """The 30-minute default left a first run without labels for half an hour."""
    settings, shown = with_conversation_gap(Settings(), simulating=True, environ={})
    assert settings.conversation_gap == DEMO_CONVERSATION_GAP < Settings().conversation_gap
    assert shown == f"{DEMO_CONVERSATION_GAP:g} s (demo, while simulating)"
    env = child_environment(settings)
    assert load_settings(env).conversation_gap == DEMO_CONVERSATION_GAP  # worker, sink, simulator
    status = Status(conversation_gap=shown, simulator="5 messages/s")
    assert f"conversation gap {shown}" in status.line()
    assert "simulated traffic 5 messages/s" in status.line()


def test_a_gap_the_user_set_is_kept_and_real_traffic_keeps_the_default():
    environ = {GAP: "900"}
    settings, shown = with_conversation_gap(load_settings(environ), simulating=True, environ=environ)
    assert settings.conversation_gap == 900
    assert shown == f"900 s ({GAP})"
    settings, shown = with_conversation_gap(Settings(), simulating=False, environ={})
    assert settings.conversation_gap == Settings().conversation_gap
    assert shown == "1800 s"


def test_up_runs_the_simulator_without_an_end_of_its_own():
    """`up` ran it for a week but with the default 1,000 chats: it fell silent after ~30 minutes."""
    args = _simulate_args("http://127.0.0.1:8000", Hook("shop", tokens=()), 5.0)
    parsed = build_parser(Settings()).parse_args(args)
    assert parsed.chats is None
    assert parsed.duration == 0  # until up stops it
    assert parsed.give_up_after == 0  # up restarts the ingest; the simulator waits for it
    assert parsed.url == "http://127.0.0.1:8000/hooks/shop"


def test_the_help_of_the_gap_names_the_demo_gap():
    assert f"`up` uses {DEMO_CONVERSATION_GAP:g} while it simulates" in SETTINGS_HELP["CONVERSATION_GAP"]


def test_up_hands_the_simulator_its_hook_token_in_the_environment_never_in_argv(monkeypatch):
    """A command line is readable by every local user (ps); the environment is not."""
    secret = "s3cret-hook-token"
    monkeypatch.setenv("MESSAGEHOOKS_HOOKS", json.dumps([{"name": "shop", "tokens": [secret]}]))
    settings = load_settings(os.environ)
    started: dict[str, Any] = {}

    class Started:
        pid = 1

        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            started.update(argv=argv, env=kwargs["env"])

    monkeypatch.setattr(supervisor.subprocess, "Popen", Started)
    supervisor.spawn(
        "simulate",
        _simulate_args("http://127.0.0.1:8000", settings.hooks[0], 5.0),
        child_environment(settings),
    )
    assert not any(secret in arg for arg in started["argv"]), started["argv"]
    child = load_settings(started["env"])
    args = build_parser(child).parse_args(started["argv"][3:])  # after `python -m messagehooks`
    assert simulator_token(child, args) == secret
