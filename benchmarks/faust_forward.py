"""The Faust ceiling: a minimal agent that forwards each record to another topic.

Same settings and fixes as the real worker (streams.faust_settings, kafka_compat), so the
ratio isolates the project's per-message work. Run by benchmarks/stream.py.
"""

import faust

from messagehooks.engines import tansu_fixes
from messagehooks.settings import load_settings
from streams.faust_settings import faust_app_settings, quiet_faust_loggers
from streams.patches import apply_faust_fixes

settings = load_settings()
apply_faust_fixes(embedded=tansu_fixes(settings))
app = faust.App(settings.worker_id, **faust_app_settings(settings))
source = app.topic(settings.topics.messages, key_serializer="raw", value_serializer="raw")
sink = app.topic(settings.topic_prefix + "forwarded", key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


@app.task
async def quiet() -> None:
    quiet_faust_loggers()


if __name__ == "__main__":
    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()
