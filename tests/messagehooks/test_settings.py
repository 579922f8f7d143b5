import json

import pytest

from messagehooks.errors import ConfigError
from messagehooks.settings import (
    DEV_HOOK,
    SETTINGS,
    SETTINGS_HELP,
    Settings,
    load_settings,
    open_hook_warnings,
    parse_hooks,
    require_hooks,
)


def test_defaults_use_the_embedded_broker_and_a_dev_hook():
    settings = load_settings({})
    assert settings.embedded
    assert settings.bootstrap == f"127.0.0.1:{settings.broker_port}"
    assert [h.name for h in settings.hooks] == [DEV_HOOK]
    assert settings.hooks[0].open
    assert not settings.hooks_configured
    assert settings.topics.messages == "landbot.messages"


def test_the_dev_hook_is_served_unless_dev_hook_is_false_and_no_hooks_are_set():
    require_hooks(load_settings({}))  # `make run`: no configuration, the dev hook
    require_hooks(
        load_settings(
            {"MESSAGEHOOKS_DEV_HOOK": "false", "MESSAGEHOOKS_HOOKS": '[{"name": "a", "token": "t"}]'}
        )
    )
    with pytest.raises(ConfigError, match="MESSAGEHOOKS_DEV_HOOK is false"):
        require_hooks(load_settings({"MESSAGEHOOKS_DEV_HOOK": "false"}))


def test_bootstrap_set_means_no_embedded_broker():
    settings = load_settings({"MESSAGEHOOKS_KAFKA_BOOTSTRAP": "kafka:9092"})
    assert not settings.embedded
    assert settings.bootstrap == "kafka:9092"


def test_hooks_from_json_with_token_or_tokens():
    hooks = parse_hooks(
        json.dumps(
            [
                {"name": "shop", "channel": 761536, "token": "a"},
                {"name": "support", "tokens": ["old", "new"]},
            ]
        )
    )
    assert hooks[0].channel == "761536"
    assert [str(t) for t in hooks[1].tokens] == ["old", "new"]
    assert hooks[1].channel is None


def test_hooks_from_toml_file(tmp_path):
    path = tmp_path / "hooks.toml"
    path.write_text('[[hooks]]\nname = "shop"\nchannel = 1\ntokens = ["t1", "t2"]\n')
    settings = load_settings({"MESSAGEHOOKS_HOOKS": str(path)})
    assert settings.hooks_configured
    assert settings.hook("shop") is not None
    assert settings.hook("nope") is None


def test_hooks_from_json_file(tmp_path):
    path = tmp_path / "hooks.json"
    path.write_text('[{"name": "shop", "token": "t"}]')
    assert parse_hooks(str(path))[0].name == "shop"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[", "not valid JSON"),
        ("[]", "non-empty list"),
        ('[{"name": "../etc"}]', "must match"),
        ('[{"name": "a", "token": "t"}, {"name": "a", "token": "t"}]', "duplicate"),
        ('[{"name": "a", "tokens": [""]}]', "non-empty strings"),
        ("/no/such/file.json", "neither a JSON list nor the path of an existing file"),
    ],
)
def test_malformed_hooks_name_the_problem(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_hooks(value)


CHANNEL = "channel must be a Landbot channel id such as 761536, got "


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (
            {"name": "shop", "tokns": ["t"]},
            "unknown key 'tokns' (did you mean 'tokens'?); the keys are name,",
        ),
        ({"name": "shop", "token": "t", "chanel": 1}, "unknown key 'chanel' (did you mean 'channel'?)"),
        ({"name": "shop", "token": "t", "secret": "x"}, "unknown key 'secret'; the keys are"),
        ({"name": "shop"}, 'has no token: give "tokens"'),
        ({"name": "shop", "channel": 761536}, "has no token"),
        ({"name": "shop", "tokens": []}, "has no token"),
        ({"name": "shop", "open": False}, "has no token"),
        ({"name": "shop", "open": "yes"}, "open must be true or false, got str"),
        ({"name": "shop", "open": True, "token": "t"}, 'has tokens and "open": true'),
        ({"name": "shop", "token": "t", "tokens": ["u"]}, 'both "token" and "tokens"'),
        ({"name": "shop", "token": "t", "channel": [761536]}, CHANNEL + "a list"),
        ({"name": "shop", "token": "t", "channel": {"id": 1}}, CHANNEL + "a dict"),
        ({"name": "shop", "token": "t", "channel": True}, CHANNEL + "a bool"),
        ({"name": "shop", "token": "t", "channel": 7.5}, CHANNEL + "a float"),
        ({"name": "shop", "token": "t", "channel": " "}, CHANNEL + "an empty string"),
    ],
)
def test_a_hook_that_would_be_open_by_mistake_is_refused(hook, message):
    """Each refusal is one line naming the hook; a typo never leaves a hook without a token."""
    with pytest.raises(ConfigError) as info:
        parse_hooks(json.dumps([{"name": "ok", "token": "t"}, hook]))
    text = str(info.value)
    assert message in text
    assert text.startswith("MESSAGEHOOKS_HOOKS[1] (hook 'shop')")
    assert "\n" not in text


def test_unknown_keys_in_a_toml_file_are_refused(tmp_path):
    path = tmp_path / "hooks.toml"
    path.write_text('[[hook]]\nname = "shop"\ntoken = "t"\n')
    with pytest.raises(ConfigError, match="unknown key 'hook' \\(did you mean 'hooks'\\?\\)"):
        parse_hooks(str(path))
    path.write_text('[[hooks]]\nname = "shop"\ntokens = ["t"]\ntokns = ["u"]\n')
    with pytest.raises(ConfigError, match="unknown key 'tokns'"):
        parse_hooks(str(path))


def test_an_open_hook_needs_open_true_and_is_warned_about():
    shop, demo = parse_hooks(
        '[{"name": "shop", "channel": "761536", "tokens": ["t"]}, {"name": "demo", "open": true}]'
    )
    assert (shop.open, shop.channel, demo.open, demo.tokens) == (False, "761536", True, ())
    settings = load_settings(
        {"MESSAGEHOOKS_HOOKS": '[{"name": "demo", "open": true}, {"name": "shop", "token": "t"}]'}
    )
    assert open_hook_warnings(settings) == [
        """hook 'demo' is open ("open": true): it accepts any request without a token"""
    ]


def test_the_dev_hook_is_open_and_warned_about_only_without_configured_hooks():
    assert open_hook_warnings(load_settings({})) == [
        "no MESSAGEHOOKS_HOOKS configured: dev hook 'default' accepts any request without a token"
    ]
    assert open_hook_warnings(load_settings({"MESSAGEHOOKS_HOOKS": '[{"name": "shop", "token": "t"}]'})) == []


def test_token_never_in_config_errors_or_repr():
    with pytest.raises(ConfigError) as info:
        parse_hooks('[{"name": "a", "tokens": ["s3cret-token", 5]}]')
    assert "s3cret-token" not in str(info.value)
    hooks = parse_hooks('[{"name": "a", "token": "s3cret-token"}]')
    assert "s3cret-token" not in repr(hooks)


def test_malformed_number_names_the_variable():
    with pytest.raises(ConfigError, match="MESSAGEHOOKS_PARTITIONS"):
        load_settings({"MESSAGEHOOKS_PARTITIONS": "six"})
    with pytest.raises(ConfigError, match="MESSAGEHOOKS_PARTITIONS"):
        load_settings({"MESSAGEHOOKS_PARTITIONS": "0"})


def test_each_setting_is_declared_once_and_the_loader_help_and_docs_read_that_declaration(
    monkeypatch, capsys
):
    """Variable, type, default and help live in one `setting(...)`: change it, and all three follow."""
    import dataclasses

    from cli.main import main
    from docgen.config import config_markdown

    defaults = Settings()
    for field in dataclasses.fields(Settings):
        if field.name == "hooks_configured":
            assert field.name not in SETTINGS  # derived by the loader, no variable of its own
            continue
        declaration = SETTINGS[field.name]
        assert declaration.variable == f"MESSAGEHOOKS_{field.name.upper()}"
        assert SETTINGS_HELP[declaration.env] == declaration.help
        if declaration.unset is None:  # a plain default: the dataclass's is the declaration's
            assert getattr(defaults, field.name) == declaration.default
            if declaration.cast in (int, float):
                with pytest.raises(ConfigError, match=declaration.variable):
                    load_settings({declaration.variable: "many"})

    changed = dataclasses.replace(SETTINGS["broker_port"], default=29_092, help="a changed help")
    monkeypatch.setitem(SETTINGS, "broker_port", changed)
    monkeypatch.delenv("MESSAGEHOOKS_BROKER_PORT", raising=False)
    assert load_settings({}).broker_port == 29_092
    assert "| `MESSAGEHOOKS_BROKER_PORT` | int | `29092` | a changed help |" in config_markdown()
    with pytest.raises(SystemExit):
        main(["broker", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "a changed help (default: 29092) [env: MESSAGEHOOKS_BROKER_PORT]" in shown


def test_the_session_code_takes_its_defaults_from_the_declarations():
    """No second literal for a setting's default in features/ or streams/."""
    import inspect

    from features.pairs import pair_turns
    from features.session import DEFAULT_CONTEXT_TURNS, DEFAULT_CONVERSATION_GAP, sessionize
    from streams.sessions import SessionSettings

    session = SessionSettings()
    assert (session.conversation_gap, session.allowed_lateness, session.context_turns) == (
        SETTINGS["conversation_gap"].default,
        SETTINGS["allowed_lateness"].default,
        SETTINGS["context_turns"].default,
    )
    assert (DEFAULT_CONVERSATION_GAP, DEFAULT_CONTEXT_TURNS) == (
        SETTINGS["conversation_gap"].default,
        SETTINGS["context_turns"].default,
    )
    assert inspect.signature(sessionize).parameters["conversation_gap"].default == DEFAULT_CONVERSATION_GAP
    assert inspect.signature(pair_turns).parameters["context_turns"].default == DEFAULT_CONTEXT_TURNS


def test_workers_and_sink_share_one_heartbeat_rule():
    assert Settings(session_timeout=2.0).heartbeat_interval == 0.3
    assert Settings(session_timeout=0.4).heartbeat_interval == 0.1  # never below 0.1 s
