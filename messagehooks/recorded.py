"""The recorded-delivery format: one MessageHook delivery per JSONL line or `raw` topic record.

A line is

- a Landbot body, ``{"messages": [...]}``, taken byte for byte (surrounding whitespace dropped), or
- a wrapper ``{"body": <object or string>, "headers": {...}, "hook": ..., "received_at": ...,
  "request_id": ...}`` (all but ``body`` optional; other keys ignored), which every record of
  the ``raw`` topic is. An object body keeps its exact bytes, a string body becomes that
  string's UTF-8.

Any other JSON object is a body too (whoever reads it judges it). `replay` POSTs deliveries
again, `backfill` parses them with the ingest's own validation: both read them here.
"""

from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from messagehooks.errors import MalformedLine

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RecordedDelivery:
    """One recorded delivery: the body as it was received and what its wrapper says about it.

    `hook`, `received_at` and `request_id` are read when asked for, so a reader that does not use
    them (replay) accepts a wrapper whatever they hold.
    """

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    """The wrapper's headers (null ones dropped), as captured: a POST again drops its own."""
    wrapper: dict[str, msgspec.Raw] = field(default_factory=dict)

    @property
    def hook(self) -> str | None:
        """The hook the delivery was posted to (None or "": not recorded)."""
        return self._field("hook", str)

    @property
    def received_at(self) -> float | None:
        """When the ingest accepted it (epoch seconds)."""
        return self._field("received_at", float)

    @property
    def request_id(self) -> str | None:
        """The ingest's id of the request."""
        return self._field("request_id", str)

    def _field(self, name: str, kind: type[_T]) -> _T | None:
        raw = self.wrapper.get(name)
        if raw is None or bytes(raw) == b"null":
            return None
        try:
            return msgspec.json.decode(bytes(raw), type=kind)
        except msgspec.ValidationError as exc:
            raise MalformedLine(f"wrapper {name!r} has the wrong type ({exc})") from exc


def parse_recorded(raw: bytes) -> RecordedDelivery | None:
    """The delivery of one line or record, None for a blank one.

    Raises:
        MalformedLine: not UTF-8, not JSON, not an object, or a wrapper whose body or headers
            have the wrong type.
    """
    stripped = raw.strip()
    if not stripped:
        return None
    try:
        stripped.decode("utf-8")
        fields = msgspec.json.decode(stripped, type=dict[str, msgspec.Raw])
    except UnicodeDecodeError as exc:
        raise MalformedLine(f"not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except msgspec.ValidationError as exc:
        raise MalformedLine(f"not a JSON object ({exc})") from exc
    except msgspec.DecodeError as exc:
        raise MalformedLine(f"not JSON ({exc})") from exc
    if "body" in fields and "messages" not in fields:
        headers = _headers(fields["headers"]) if "headers" in fields else {}
        return RecordedDelivery(_wrapped_body(fields["body"]), headers, fields)
    return RecordedDelivery(stripped)


def _wrapped_body(raw: msgspec.Raw) -> bytes:
    text = bytes(raw)
    if text.startswith(b"{"):
        return text
    if text.startswith(b'"'):
        body: str = msgspec.json.decode(text, type=str)
        return body.encode()
    raise MalformedLine("wrapper 'body' must be a JSON object or a string")


def _headers(raw: msgspec.Raw) -> dict[str, str]:
    try:
        headers: dict[str, str | None] = msgspec.json.decode(bytes(raw), type=dict[str, str | None])
    except msgspec.ValidationError as exc:
        raise MalformedLine(f"wrapper 'headers' must be an object of strings ({exc})") from exc
    return {name: value for name, value in headers.items() if value is not None}
