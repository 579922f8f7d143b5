"""Errors of messagehooks, one tree under `MessageHooksError`: every exception of ours is in it.

MessageHooksError
├── ConfigError          a setting, option or input file is missing or malformed (CLI message, exit 2)
├── PortUnavailable      a port a server must listen on is taken or cannot be bound (exit 2)
├── Unauthorized         401: no or wrong token for a hook
├── UnknownHook          404: no hook of that name
├── InvalidPayload       400/408/413/422 + a dead-letter record: authenticated but unusable
├── RateLimited          429: the hook's rate limit is reached (nothing stored)
├── BrokerUnavailable    a command cannot reach the broker, or a broker we start does not come up
├── SpoolUnavailable     503: Kafka is away and the spool cannot store the request (disk full)
├── SpoolCorrupt         the spool file fails SQLite's integrity check (moved aside at start)
├── MalformedLine        (also a ValueError) a recorded delivery that is not one (messagehooks.recorded)
├── UnknownTable         a table name that is not one of the dataset's
├── TableMissing         a dataset table not written yet
├── TableCorrupt         a dataset table whose Delta log cannot be read (names the file at fault)
├── GaveUp               `up`: a child or the broker kept dying
├── UnsupportedVersion   Faust, mode or aiokafka is not the release streams/patches/ was written for
├── NotEnoughData        (also a ValueError; features/training.py) too little data to train honestly
├── ModelMismatch        a saved model's FEATURE_VERSION (or artefact format) is not the running code's
└── UntrustedModel       a saved model is altered, or holds a type outside the trusted list (skops)

A command prints any of them as one line (cli/main.py). A wrong argument passed by code to a pure
function (a negative setting, a message of another chat) stays a plain ValueError: a bug to fix,
not a condition to handle. tests/messagehooks/test_errors.py checks every exception class of our
packages is in this tree.
"""

from dataclasses import dataclass
from pathlib import Path


class MessageHooksError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(MessageHooksError):
    """A setting, a command's option or its input (a file, a topic) is missing or malformed."""


class PortUnavailable(MessageHooksError):
    """A port one of our servers must listen on is taken or cannot be bound."""


class Unauthorized(MessageHooksError):
    """The request carries no token, or not one of the hook's tokens."""


class UnknownHook(MessageHooksError):
    """The request names a hook that is not configured."""


class InvalidPayload(MessageHooksError):
    """An authenticated payload (or one message of it) cannot be used.

    Args:
        reason: a short machine-readable code, e.g. ``malformed_json`` (also a metric label).
        detail: a human sentence naming the problem and what was expected.
        field: the JSON path of the offending field, when there is one.
        status: the HTTP status that answers it.
    """

    def __init__(self, reason: str, detail: str, *, field: str | None = None, status: int = 422):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.field = field
        self.status = status


class RateLimited(MessageHooksError):
    """The hook received more requests than its rate limit allows; retry after `retry_after` s."""

    def __init__(self, detail: str, retry_after: float):
        super().__init__(detail)
        self.retry_after = retry_after


class BrokerUnavailable(MessageHooksError):
    """No broker to work with: a command cannot reach one, or one we start exits or does not answer.

    The ingest never raises it: when Kafka does not take a request it spools (`SpoolUnavailable`
    only if the spool cannot store it either).
    """


class SpoolUnavailable(MessageHooksError):
    """The request could not be stored: Kafka did not take it and the spool's disk refused it."""


class UnsupportedVersion(MessageHooksError):
    """An installed package is not the release whose private code streams/patches/ patches."""


class SpoolCorrupt(MessageHooksError):
    """The spool file fails SQLite's integrity check."""


class MalformedLine(MessageHooksError, ValueError):
    """A line that is not a JSON object, or a wrapper whose body/headers have the wrong type."""


class UnknownTable(MessageHooksError):
    """A table name that is not one of the dataset's tables."""


class TableMissing(MessageHooksError):
    """The table has not been written yet (no POST reached it, or another dataset root)."""


@dataclass(frozen=True, slots=True)
class BadLogFile:
    """A file of a ``_delta_log`` that a reader cannot use, and why (`TableCorrupt.files`)."""

    path: Path
    problem: str
    version: int | None = None


class TableCorrupt(MessageHooksError):
    """A dataset table exists but its Delta log cannot be read (a torn, garbled or missing file)."""

    def __init__(self, message: str, files: list[BadLogFile]) -> None:
        super().__init__(message)
        self.files = files


class GaveUp(MessageHooksError):
    """A child (or the broker) kept dying: the message says which and how often."""


class ModelMismatch(MessageHooksError):
    """A saved model was made for other features (FEATURE_VERSION) or another artefact format.

    Its features would be computed by code that means something else by them: retrain instead.
    """


class UntrustedModel(MessageHooksError):
    """A saved model's file does not match its card, or holds a type outside the trusted list."""
