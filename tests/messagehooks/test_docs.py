"""Generated parts of the docs stay equal to the code they describe."""

import re
from pathlib import Path

from messagehooks.store import schema_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMAS = re.compile(r"<!-- schemas:start[^>]*-->\n(.*?)<!-- schemas:end -->", re.DOTALL)


def test_dataset_doc_lists_the_table_schemas_of_the_code():
    block = SCHEMAS.search((DOCS / "dataset.md").read_text())
    assert block is not None, "docs/dataset.md lost its schemas markers"
    assert block.group(1).strip() == schema_markdown().strip(), (
        "docs/dataset.md is out of date: paste messagehooks.store.schema_markdown() between the markers"
    )
