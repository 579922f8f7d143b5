"""streams/patches refuses to load on releases its private code was not written for."""

import re
from importlib.metadata import PackageNotFoundError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messagehooks.errors import MessageHooksError, UnsupportedVersion
from streams.patches import PINNED, check_versions


def _installed(**found: str):
    """A version lookup answering the pins, but `found` for some (by module-style name)."""
    versions = {**PINNED, **{name.replace("_", "-"): version for name, version in found.items()}}

    def lookup(package: str) -> str:
        if versions[package] == "missing":
            raise PackageNotFoundError(package)
        return versions[package]

    return lookup


def test_the_pinned_versions_pass():
    check_versions(_installed())


def test_the_pins_are_pyprojects():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    dependencies = set(pyproject["project"]["dependencies"])
    assert {f"{package}=={version}" for package, version in PINNED.items()} <= dependencies


def test_another_faust_is_refused_naming_package_found_and_expected():
    with pytest.raises(UnsupportedVersion) as refused:
        check_versions(_installed(faust_streaming="0.15.4"))
    message = str(refused.value)
    assert "faust-streaming" in message
    assert "0.15.4" in message
    assert "0.15.3" in message
    assert isinstance(refused.value, MessageHooksError)  # the CLI prints it, exit 2


def test_a_missing_package_is_refused():
    with pytest.raises(UnsupportedVersion, match=re.escape("aiokafka 0.14.0, found not installed")):
        check_versions(_installed(aiokafka="missing"))


@given(st.sampled_from(sorted(PINNED)), st.text(min_size=1, max_size=12))
def test_any_other_version_of_any_pinned_package_is_refused(package, version):
    if version == PINNED[package]:
        return
    with pytest.raises(UnsupportedVersion, match=re.escape(package)):
        check_versions(_installed(**{package.replace("-", "_"): version}))
