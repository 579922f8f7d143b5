"""Generated parts of the docs stay equal to the code they describe."""

import re
from pathlib import Path

from dataset.tables import schema_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMAS = re.compile(r"<!-- schemas:start[^>]*-->\n(.*?)<!-- schemas:end -->", re.DOTALL)


def test_dataset_doc_lists_the_table_schemas_of_the_code():
    block = SCHEMAS.search((DOCS / "dataset.md").read_text())
    assert block is not None, "docs/dataset.md lost its schemas markers"
    assert block.group(1).strip() == schema_markdown().strip(), (
        "docs/dataset.md is out of date: paste dataset.tables.schema_markdown() between the markers"
    )


def test_config_doc_is_generated_from_the_settings():
    from docgen.config import config_markdown

    assert (DOCS / "CONFIG.md").read_text() == config_markdown(), (
        "docs/CONFIG.md is out of date: .venv/bin/python -m docgen.config > docs/CONFIG.md"
    )


def test_every_setting_is_documented():
    import dataclasses

    from messagehooks.settings import SETTINGS_HELP, Settings

    documented = {name.lower() for name in SETTINGS_HELP}
    assert {f.name for f in dataclasses.fields(Settings)} - documented == {"hooks_configured"}
