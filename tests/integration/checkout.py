"""A temporary copy of this checkout, run as `make venv`'s editable install would run it.

The default data directory is ``data/`` of the checkout the package is imported from
(messagehooks/paths.py). Tests that run commands with no data-dir override (the notebooks, the
README walk) run a copy, imported from its own directory through PYTHONPATH: their dataset goes
to the copy's data/, and a developer's own data/ is neither read nor written.
"""

import shutil
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "pyproject.toml",
    "messagehooks",
    "features",
    "ingest",
    "streams",
    "dataset",
    "devtools",
    "cli",
    "notebooks",
)
"""What a checkout needs to run: the project file that marks its root, the packages, the notebooks."""


def copy_of_the_checkout(to: Path, extra: tuple[str, ...] = ()) -> Path:
    """`PACKAGES` and the `extra` paths of this checkout, copied to `to` (without caches)."""
    to.mkdir(parents=True)
    for name in (*PACKAGES, *extra):
        source, target = CHECKOUT / name, to / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_*"))
        else:
            shutil.copy2(source, target)
    return to


def with_the_venv(checkout: Path) -> Path:
    """`checkout`'s `.venv`: a link to the virtualenv running the tests, so `.venv/bin/...` works.

    Nothing is installed into it: `make venv` already did, for the real checkout.
    """
    (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return checkout


def imported_from(checkout: Path) -> dict[str, str]:
    """The variables that make Python import the package from `checkout` (its editable install)."""
    return {"PYTHONPATH": str(checkout)}
