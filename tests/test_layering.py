"""Dependencies flow one way: ingest never loads faust/pandas/deltalake, features no Kafka.

The ingest, the stream workers and the sink scale apart (docs/operations.md), so each loads only
what it runs.
"""

import subprocess
import sys

import pytest

FORBIDDEN = {
    "messagehooks.settings": {"faust", "starlette.applications", "pandas", "deltalake", "sklearn"},
    "ingest.app": {"faust", "pandas", "sklearn", "deltalake"},
    "features": {"faust", "aiokafka", "starlette"},
}


@pytest.mark.parametrize(("module", "forbidden"), sorted(FORBIDDEN.items()))
def test_module_does_not_import(module, forbidden):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not (forbidden & loaded), f"{module} loads {sorted(forbidden & loaded)}"
