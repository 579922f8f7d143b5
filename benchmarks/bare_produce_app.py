"""Second ceiling: parse JSON and await one aiokafka send with acks=all, nothing else.

The producer has the ingest's settings for the engine in MESSAGEHOOKS_BROKER_ENGINE (idempotent
on Apache Kafka), so the ratio compares the same sends on the same broker.
"""

import contextlib
import os

import orjson
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from messagehooks.kafka import engine_producer_settings, make_producer
from messagehooks.settings import load_settings

state: dict[str, AIOKafkaProducer] = {}


async def produce(request: Request) -> Response:
    body = await request.body()
    orjson.loads(body)
    await state["producer"].send_and_wait(os.environ["BENCH_TOPIC"], body, key=b"1")
    return Response(b'{"accepted":1}', media_type="application/json")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette):
    state["producer"] = producer = make_producer(
        os.environ["BENCH_BOOTSTRAP"], **engine_producer_settings(load_settings())
    )
    await producer.start()
    yield
    await producer.stop()


app = Starlette(routes=[Route("/hooks/{hook}", produce, methods=["POST"])], lifespan=lifespan)
