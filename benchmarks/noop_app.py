"""The HTTP ceiling: a Starlette endpoint that reads the body and answers, on the same stack."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def noop(request: Request) -> Response:
    await request.body()
    return Response(b'{"accepted":1}', media_type="application/json")


app = Starlette(routes=[Route("/hooks/{hook}", noop, methods=["POST"])])
