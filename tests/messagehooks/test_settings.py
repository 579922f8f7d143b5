import json

import pytest

from messagehooks.errors import ConfigError
from messagehooks.settings import DEV_HOOK, load_settings, parse_hooks


def test_defaults_use_the_embedded_broker_and_a_dev_hook():
    settings = load_settings({})
    assert settings.embedded
    assert settings.bootstrap == f"127.0.0.1:{settings.broker_port}"
    assert [h.name for h in settings.hooks] == [DEV_HOOK]
    assert settings.hooks[0].open
    assert not settings.hooks_configured
    assert settings.topics.messages == "landbot.messages"


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
        ('[{"name": "a"}, {"name": "a"}]', "duplicate"),
        ('[{"name": "a", "tokens": [""]}]', "non-empty strings"),
        ("/no/such/file.json", "neither a JSON list nor the path of an existing file"),
    ],
)
def test_malformed_hooks_name_the_problem(value, message):
    with pytest.raises(ConfigError, match=message):
        parse_hooks(value)


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
