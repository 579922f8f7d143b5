"""The ingest's Starlette application: `create_app(settings, publisher)` with its lifespan."""

import contextlib
import logging
import math
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ingest.metrics import IngestMetrics
from ingest.publisher import KafkaPublisher, Publisher
from ingest.routes import Ingest, ORJSONResponse
from messagehooks.errors import InvalidPayload, RateLimited, SpoolUnavailable, Unauthorized, UnknownHook
from messagehooks.settings import Settings, open_hook_warnings

logger = logging.getLogger(__name__)


def create_app(settings: Settings, publisher: Publisher | None = None) -> Starlette:
    """The ingest app; `publisher` defaults to Kafka with the durable spool."""
    metrics = IngestMetrics()
    ingest = Ingest(settings, publisher or KafkaPublisher(settings, metrics), metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for warning in open_hook_warnings(settings):
            logger.warning("%s", warning)
        await ingest.publisher.start()
        try:
            yield
        finally:
            await ingest.publisher.stop()

    async def unauthorized(request: Request, exc: Exception) -> Response:
        metrics.unauthorized.inc()
        metrics.count_request(request.path_params.get("hook", "_unknown"), 401)
        return _error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Token"})

    async def unknown_hook(request: Request, exc: Exception) -> Response:
        return _error(404, "unknown_hook", str(exc))

    async def rate_limited(request: Request, exc: Exception) -> Response:
        wait = exc.retry_after if isinstance(exc, RateLimited) else 1.0
        metrics.count_request(request.path_params.get("hook", "_unknown"), 429)
        return _error(429, "rate_limited", str(exc), {"Retry-After": str(max(1, math.ceil(wait)))})

    async def invalid(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, InvalidPayload):  # pragma: no cover - registered for it only
            raise exc
        return _error(exc.status, exc.reason, exc.detail)

    async def spool_unavailable(request: Request, exc: Exception) -> Response:
        metrics.count_request(request.path_params.get("hook", "_unknown"), 503)
        return _error(503, "spool_unavailable", str(exc), {"Retry-After": "5"})

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it only
            raise exc
        return _error(exc.status_code, "http_error", str(exc.detail), dict(exc.headers or {}))

    app = Starlette(
        routes=[
            Route("/hooks/{hook}", ingest.receive, methods=["POST"]),
            Route("/healthz", ingest.healthz, methods=["GET"]),
            Route("/readyz", ingest.readyz, methods=["GET"]),
            Route("/metrics", ingest.metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", ingest.openapi, methods=["GET"]),
        ],
        exception_handlers={
            Unauthorized: unauthorized,
            UnknownHook: unknown_hook,
            RateLimited: rate_limited,
            InvalidPayload: invalid,
            HTTPException: http_error,
            SpoolUnavailable: spool_unavailable,
        },
        lifespan=lifespan,
    )
    app.state.ingest = ingest
    return app


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> Response:
    return ORJSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)
