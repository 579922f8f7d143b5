"""The OpenAPI 3.1 document of the ingest, with the request schema generated from the models."""

from functools import cache
from typing import Any

import msgspec

from messagehooks.schema import MAX_ID_CHARS, LandbotMessage
from messagehooks.settings import HOOK_NAME, Settings


@cache
def _message_schema() -> tuple[dict[str, Any], dict[str, Any]]:
    schema, components = msgspec.json.schema_components(
        [LandbotMessage], ref_template="#/components/schemas/{name}"
    )
    return schema[0], components


# What `messagehooks.validation.normalize` requires beyond the types of `LandbotMessage`, so that a
# body valid by this document is accepted (checked by schemathesis in tests/reliability).
_ID = {
    "anyOf": [
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        # Surrounding whitespace is dropped (messagehooks.identity.chat_id): a blank id is none.
        {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": r"\S"},
    ]
}
_CHAT_ID = {
    "description": "A chat id: `_raw.chat`, else `customer.id`; a null, empty or blank one does not count",
    "anyOf": [
        {
            "required": ["_raw"],
            "properties": {"_raw": {"type": "object", "required": ["chat"], "properties": {"chat": _ID}}},
        },
        {
            "required": ["customer"],
            "properties": {"customer": {"type": "object", "required": ["id"], "properties": {"id": _ID}}},
        },
    ],
}
_DATA_TEXT = {
    "properties": {
        "data": {"properties": {key: {"type": ["string", "null"]} for key in ("body", "payload", "action")}}
    }
}


# The operational routes need no credentials (docs/ingest.md, "OpenAPI"): probes and Prometheus
# scrapers carry none, and they answer nothing about the messages.
_OPEN: list[dict[str, list[str]]] = []


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    """OpenAPI for ``POST /hooks/{hook}`` and the operational endpoints."""
    message_ref, components = _message_schema()
    reject = "202 instead of 4xx (MESSAGEHOOKS_REJECT_WITH_202)" if settings.reject_with_202 else ""
    accepted = {
        "type": "object",
        "required": ["accepted", "rejected", "request_id"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "request_id": {"type": "string"},
            "spooled": {"type": "boolean"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/MessageError"}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "messagehooks ingest",
            "version": "1",
            "description": "Receives Landbot MessageHooks and publishes them durably to Kafka.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [
            {
                "url": "{scheme}://{host}",
                "description": "The ingest (`messagehooks ingest`); behind TLS in production.",
                "variables": {
                    "scheme": {"default": "http", "enum": ["http", "https"]},
                    "host": {
                        "default": f"127.0.0.1:{settings.port}",
                        "description": "host:port the ingest is reached at (MESSAGEHOOKS_PORT).",
                    },
                },
            }
        ],
        "paths": {
            "/hooks/{hook}": {
                "post": {
                    "operationId": "receiveHook",
                    "summary": "Receive a Landbot MessageHook delivery",
                    "parameters": [
                        {
                            "name": "hook",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "pattern": HOOK_NAME.pattern,
                            },
                        },
                        {"name": "sentry-trace", "in": "header", "schema": {"type": "string"}},
                    ],
                    "security": [{"landbotToken": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["messages"],
                                    "properties": {
                                        "messages": {
                                            "type": "array",
                                            "minItems": 1,
                                            "items": {"allOf": [message_ref, _CHAT_ID, _DATA_TEXT]},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Every record acknowledged by Kafka (acks=all)",
                            "content": {"application/json": {"schema": accepted}},
                        },
                        "202": {
                            "description": "Records fsynced in the local spool (broker unavailable); "
                            f"forwarded later. {reject}",
                            "content": {"application/json": {"schema": accepted}},
                        },
                        "400": _error("Body is not UTF-8 JSON"),
                        "401": _error("Missing or wrong token"),
                        "404": _error("Unknown hook"),
                        "408": _error(
                            "request_timeout, header_timeout or request_deadline: the request came too "
                            "slowly; the connection is closed"
                        ),
                        "413": _error("Body or message count over the limit"),
                        "422": _error("No valid message (each rejected one is dead-lettered)"),
                        "429": _error(
                            "rate_limited: the hook's rate limit is reached; retry after Retry-After"
                        ),
                        "431": _error(
                            "headers_too_large: request line and headers; the connection is closed"
                        ),
                        "503": _error(
                            "spool_unavailable: the broker did not take the request and the spool's disk "
                            "refused it (full); nothing was accepted, retry after Retry-After"
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": _OPEN,
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: broker reachable, topics present, spool empty",
                    "security": _OPEN,
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "degraded"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics",
                    "security": _OPEN,
                    "responses": {"200": {"description": "metrics"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": _OPEN,
                    "responses": {
                        "200": {
                            "description": "the OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "landbotToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Token <token>` (Landbot) or `Bearer <token>`",
                }
            },
            "schemas": {
                **components,
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "request_id": {"type": "string"},
                    },
                },
                "MessageError": {
                    "type": "object",
                    "properties": {
                        "index": {"type": ["integer", "null"]},
                        "error": {"type": "string"},
                        "detail": {"type": "string"},
                        "field": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
