"""docs/asyncapi.yaml describes every topic, and every reference in it resolves."""

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from docgen import schemas as contracts
from messagehooks.topics import Topics

DOCS = Path(__file__).resolve().parents[2] / "docs"
ASYNCAPI = DOCS / "asyncapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))


def _pointer(document: Any, fragment: str) -> Any:
    """The value at a JSON pointer (``/a/b~1c``) of `document`; KeyError/IndexError if absent."""
    if fragment in ("", "/"):
        return document
    assert fragment.startswith("/"), f"not a JSON pointer: {fragment!r}"
    node = document
    for token in fragment[1:].split("/"):
        token = unquote(token).replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    target, _, fragment = ref.partition("#")
    if not target:
        return _pointer(spec, fragment)
    path = (ASYNCAPI.parent / target).resolve()
    assert path.is_file(), f"{ref}: {path} does not exist"
    document = json.loads(path.read_text(encoding="utf-8"))
    for inner in _refs(document):  # the schema files' own references are local ($defs)
        assert inner.startswith("#"), f"{path.name}: non-local $ref {inner}"
        _pointer(document, inner[1:])
    return _pointer(document, fragment)


def _deref(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve(spec, node["$ref"])
    return node


def _kafka_channels(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: channel
        for name, channel in spec["channels"].items()
        if {"$ref": "#/servers/kafka"} in channel.get("servers", [])
    }


def test_it_is_asyncapi_3_0(spec):
    assert re.fullmatch(r"3\.0\.\d+", str(spec["asyncapi"]))
    assert spec["info"]["title"]
    assert spec["info"]["version"]
    assert spec["servers"]["kafka"]["protocol"] == "kafka"
    assert "bootstrap" in spec["servers"]["kafka"]["variables"]
    assert spec["servers"]["ingest"]["protocol"] in {"http", "https"}


def test_every_ref_resolves(spec):
    refs = _refs(spec)
    assert len(refs) > 20
    for ref in refs:
        try:
            _resolve(spec, ref)
        except (KeyError, IndexError, ValueError) as exc:
            pytest.fail(f"{ref} does not resolve: {exc!r}")


def test_every_topic_is_a_channel_with_key_and_schema(spec):
    channels = _kafka_channels(spec)
    topics = contracts.topic_names()
    assert sorted(channel["address"] for channel in channels.values()) == sorted(
        f"{{prefix}}{topic}" for topic in topics
    )
    for channel in channels.values():
        prefix = _deref(spec, channel["parameters"]["prefix"])
        assert channel["address"].replace("{prefix}", prefix["default"]) in Topics(prefix["default"]).all()
        assert prefix["default"] == Topics().prefix
        topic = channel["address"].removeprefix("{prefix}")
        (message,) = (_deref(spec, m) for m in channel["messages"].values())
        assert message["bindings"]["kafka"]["key"]["type"] == "string"
        assert message["bindings"]["kafka"]["key"]["description"]
        payload_ref = message["payload"]["schema"]["$ref"]
        assert Path(payload_ref).name == contracts.schema_filename(topic)
        assert _resolve(spec, payload_ref)["$id"].endswith(contracts.schema_filename(topic))


def test_operations_cover_subscribers_and_the_ingest(spec):
    operations = spec["operations"]
    for op in operations.values():
        channel = _deref(spec, op["channel"])
        for message_ref in op["messages"]:
            assert message_ref["$ref"].startswith(op["channel"]["$ref"] + "/messages/")
        assert channel is not None
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for op in operations.values():
        by_action[op["action"]].add(op["channel"]["$ref"].removeprefix("#/channels/"))
    assert set(_kafka_channels(spec)) <= by_action["receive"]
    assert {"raw", "messages", "events", "dead-letter", "turn-pairs", "conversations"} <= by_action["send"]
    assert "hooks" in by_action["receive"]


def test_the_http_entry_is_post_hooks(spec):
    hooks = spec["channels"]["hooks"]
    assert hooks["address"] == "/hooks/{hook}"
    assert "hook" in hooks["parameters"]
    (operation,) = (op for op in spec["operations"].values() if op["channel"]["$ref"] == "#/channels/hooks")
    assert operation["action"] == "receive"
    assert operation["bindings"]["http"]["method"] == "POST"


def test_a_broken_ref_is_caught(spec):
    with pytest.raises(KeyError):
        _resolve(spec, "#/channels/no-such-channel")
    with pytest.raises(KeyError):
        _resolve(spec, f"./schemas/{contracts.schema_filename('raw')}#/properties/no_such_field")
    with pytest.raises(AssertionError):
        _resolve(spec, "./schemas/no-such-topic.v1.json")


def test_every_channel_says_whether_it_carries_personal_data_masked(spec):
    said = {
        channel["address"].removeprefix("{prefix}"): channel["x-personal-data"]
        for channel in _kafka_channels(spec).values()
    }
    assert said == contracts.TOPIC_PERSONAL_DATA
    assert said["turn-pairs"] == said["conversations"] == "masked"  # the topics for other teams
    for topic, kind in said.items():
        description = contracts.topic_schema(topic)["description"]
        assert ("masked" in description) == (kind == "masked"), topic
