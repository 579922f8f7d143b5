"""The versions the patches were written for, checked when they are imported, and how they install.

Every patch replaces or reads private code of exactly these releases (the pins in
pyproject.toml). Another release may have moved or changed that code, and a patch copied from
the old one would then silently undo an upstream fix or break the worker in a rebalance: so
the package refuses to load rather than patch an unknown version.
"""

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from messagehooks.errors import UnsupportedVersion

logger = logging.getLogger(__name__)

PINNED: Mapping[str, str] = {
    "faust-streaming": "0.15.3",
    "mode-streaming": "0.7.1",
    "aiokafka": "0.14.0",
}
"""Distribution name → the one version whose private code streams/patches/ copies or reads."""

MARKER = "_messagehooks_fix"
"""Attribute set on an installed replacement, so that installing twice is a no-op."""


def check_versions(installed: Callable[[str], str] = version) -> None:
    """Refuse to go on unless every package in `PINNED` is installed at its pinned version.

    Args:
        installed: The installed version of a distribution (``importlib.metadata.version``);
            raises ``PackageNotFoundError`` for one that is not installed.

    Raises:
        UnsupportedVersion: a package is missing or at another version (names both versions).
    """
    for package, expected in PINNED.items():
        try:
            found = installed(package)
        except PackageNotFoundError:
            found = "not installed"
        if found != expected:
            raise UnsupportedVersion(
                f"streams/patches was written for {package} {expected}, found {found}: "
                f"install {package}=={expected} (pyproject.toml), or re-check every patch of it "
                "against the new version and update the pin"
            )


def is_patched(owner: object, name: str, marker: str = MARKER) -> bool:
    """Whether `owner.name` is already one of our replacements (carrying `marker`)."""
    return bool(getattr(getattr(owner, name), marker, False))


def install(owner: object, name: str, replacement: Callable[..., Any], marker: str = MARKER) -> None:
    """Replace `owner.name` by `replacement`, marked so that `is_patched` sees it."""
    setattr(replacement, marker, True)
    setattr(owner, name, replacement)
    logger.debug("patched %s.%s", getattr(owner, "__qualname__", owner), name)


check_versions()
