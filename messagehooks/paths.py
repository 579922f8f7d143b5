"""Where the project's paths resolve, the same from any working directory.

A relative default would follow the working directory: a notebook's kernel starts in notebooks/
and looked for notebooks/data/datasets. So the default data directory is ``data/`` of the
checkout the package runs from (``make venv`` installs it editable), and a path that is given
(a variable or a flag) is made absolute once, against the working directory it was given in.
docs/CONFIG.md, "Paths", says the same for users.
"""

import functools
import os
import tomllib
from pathlib import Path

PROJECT_NAME = "messagehooks"
DATA_DIR_NAME = "data"


def checkout_of(package_dir: Path) -> Path | None:
    """The source checkout holding `package_dir`: its parent, if that has this project's pyproject.toml.

    None for a package installed from a wheel: site-packages holds no pyproject.toml.
    """
    root = package_dir.parent
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if isinstance(project, dict) and project.get("name") == PROJECT_NAME else None


@functools.cache
def project_root() -> Path | None:
    """The checkout this package is imported from (None when installed from a wheel)."""
    return checkout_of(Path(__file__).resolve().parent)


def default_data_dir() -> Path:
    """``data/`` of the checkout; without one (a wheel, the Docker image), of the working directory."""
    return (project_root() or Path.cwd()) / DATA_DIR_NAME


def absolute_path(value: str | os.PathLike[str]) -> Path:
    """`value` with ``~`` expanded, made absolute against the working directory (``..`` folded)."""
    return Path(os.path.abspath(Path(value).expanduser()))


def absolute_uri(value: str) -> str:
    """A dataset URI: an object-store URL (``scheme://``) as given, a local path made absolute."""
    return value if "://" in value else str(absolute_path(value))
