"""Errors of messagehooks, one tree under `MessageHooksError`.

MessageHooksError
├── ConfigError          a setting is missing or malformed (CLI message, exit 2)
├── PortUnavailable      a port a server must listen on is taken or cannot be bound (exit 2)
├── Unauthorized         401: no or wrong token for a hook
├── UnknownHook          404: no hook of that name
├── InvalidPayload       400/408/413/422 + a dead-letter record: authenticated but unusable
├── RateLimited          429: the hook's rate limit is reached (nothing stored)
├── BrokerUnavailable    Kafka did not answer: the ingest spools, a command exits 2
├── SpoolUnavailable     503: Kafka is away and the spool cannot store the request (disk full)
└── UnsupportedVersion   Faust, mode or aiokafka is not the release streams/patches/ was written for
"""


class MessageHooksError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(MessageHooksError):
    """A setting is missing or malformed."""


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
    """Kafka did not answer: no ack before the produce deadline, or no broker to reach at all."""


class SpoolUnavailable(MessageHooksError):
    """The request could not be stored: Kafka did not take it and the spool's disk refused it."""


class UnsupportedVersion(MessageHooksError):
    """An installed package is not the release whose private code streams/patches/ patches."""
