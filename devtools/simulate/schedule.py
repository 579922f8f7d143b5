"""When each message is sent: chats start as a Poisson process, their scripts interleave.

Timestamps are the time each message is due, so event time is live time (scaled by
`time_scale`) and jittered sends arrive out of order.
"""

import heapq
import random
from collections.abc import Callable, Iterator

from devtools.simulate.options import SimulationOptions
from devtools.simulate.script import ChatScript, Scripted, chat_script


def mean_messages(options: SimulationOptions, sample: int = 200) -> float:
    """Messages per chat on average (returning visits included), over the first `sample` chats."""
    count = sample if options.chats is None else min(options.chats, sample)
    return sum(len(chat_script(options, i).messages) for i in range(count)) / count


def schedule(
    options: SimulationOptions,
    start: float,
    *,
    until: float | None = None,
    on_start: Callable[[ChatScript], None] = lambda script: None,
) -> Iterator[tuple[float, Scripted]]:
    """Every message of the traffic as (send time, message stamped with its due time), in send order.

    Chats start as a Poisson process whose mean spacing makes `options.rate` messages/s, from
    `start` until `until` (None: forever) or the chat budget; each is scripted as it starts, so a
    week of traffic is never in memory. Ends after the last started chat's last message.
    """
    chat_gap = mean_messages(options) / options.rate  # seconds between chat starts, on average
    arrivals = random.Random(f"{options.seed}:arrivals")  # noqa: S311 - simulation
    due: list[tuple[float, int, Scripted]] = []
    next_start, index, order = start, 0, 0
    while True:
        while (
            (options.chats is None or index < options.chats)
            and (until is None or next_start <= until)
            and (not due or next_start <= due[0][0])
        ):
            script = chat_script(options, index)
            on_start(script)
            for item in script.messages:
                at = next_start + item.at * options.time_scale
                send_at = at
                if (
                    item.message.get("sender", {}).get("type") == "bot"
                    and arrivals.random() < options.disorder
                ):
                    send_at += arrivals.uniform(0.01, 0.04)  # sent late: its burst arrives out of order
                heapq.heappush(due, (send_at, order, _stamped(item, at)))
                order += 1
            index += 1
            next_start += arrivals.expovariate(1 / chat_gap)
        if not due:
            return
        send_at, _, item = heapq.heappop(due)
        yield send_at, item


def _stamped(item: Scripted, timestamp: float) -> Scripted:
    message = {
        **item.message,
        "timestamp": round(timestamp, 6),
        "_raw": {**item.message["_raw"], "timestamp": round(timestamp, 6)},
    }
    return Scripted(item.at, message, item.trace)
