"""The packages import one way: kernel <- features <- {ingest, streams, dataset, devtools} <- cli.

docs/ARCHITECTURE.md draws the picture; this file is its enforcement. Our own imports are read
from the source (every `import`, also inside functions), so a lazy import cannot hide an arrow
against the direction. Third-party weight is checked on a real interpreter: the ingest, the stream
workers and the sink scale apart (docs/operations.md), so each loads only what it runs.
"""

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS = {
    "messagehooks": 0,  # the kernel: imports nothing of ours
    "features": 1,  # pure feature code
    "ingest": 2,
    "streams": 2,
    "dataset": 2,
    "devtools": 2,
    "cli": 3,  # the top: the only code that imports every runtime
    "docgen": 3,  # doc generators, not shipped
}
"""A package may import its own modules and packages of a lower layer, never a sibling's."""

ENTRY_POINTS = {"messagehooks/__main__.py": "cli"}
"""`python -m messagehooks` runs the CLI: its one file sits in the kernel's folder, in the cli layer."""

MAX_MODULE_LINES = 400

FORBIDDEN_THIRD_PARTY = {
    "messagehooks.settings": {"faust", "starlette.applications", "pandas", "deltalake", "sklearn"},
    "ingest.app": {"faust", "pandas", "sklearn", "deltalake"},
    "features": {"faust", "aiokafka", "starlette"},
}


def _imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def wrong_way_imports(root: Path) -> list[str]:
    """Every import in the packages under `root` that points at the same or a higher layer."""
    wrong = []
    for package in LAYERS:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            layer_of_file = ENTRY_POINTS.get(relative, package)
            for line, module in _imported_packages(path.read_text(encoding="utf-8")):
                target = module.split(".")[0]
                if target in LAYERS and target != layer_of_file and LAYERS[target] >= LAYERS[layer_of_file]:
                    wrong.append(f"{relative}:{line}: {layer_of_file} imports {module}")
    return wrong


def test_no_import_points_against_the_layers():
    assert wrong_way_imports(ROOT) == []


@pytest.mark.parametrize(
    ("planted_in", "line"),
    [
        ("messagehooks/errors.py", "from features.structs import Turn"),  # kernel -> features
        ("features/pairs.py", "    import dataset.store\n"),  # pure code -> dataset, lazily
        ("streams/resume.py", "from ingest import app"),  # sibling -> sibling
        ("dataset/rows.py", "from cli.main import main"),  # middle -> top
    ],
)
def test_a_planted_wrong_way_import_is_reported(tmp_path, planted_in, line):
    for package in LAYERS:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = set(wrong_way_imports(tmp_path))
    planted = tmp_path / planted_in
    if line.startswith(" "):  # inside a function, as a lazy import would be
        line = f"\n\ndef _planted():\n{line}"
    planted.write_text(planted.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    reported = set(wrong_way_imports(tmp_path)) - before
    assert len(reported) == 1, reported
    assert reported.pop().startswith(f"{planted_in}:")


def test_every_shipped_package_has_a_layer():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])
    assert shipped == set(LAYERS) - {"docgen"}


def test_no_module_is_over_the_size_limit():
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for package in LAYERS
        for path in sorted((ROOT / package).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert long == []


@pytest.mark.parametrize("doc", ["docs/ARCHITECTURE.md", "README.md"])
def test_the_layout_docs_name_every_package(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert [package for package in LAYERS if f"`{package}/`" not in text] == []


@pytest.mark.parametrize(("module", "forbidden"), sorted(FORBIDDEN_THIRD_PARTY.items()))
def test_module_does_not_load_heavy_third_party_code(module, forbidden):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout.split()
    )
    assert not (forbidden & loaded), f"{module} loads {sorted(forbidden & loaded)}"
