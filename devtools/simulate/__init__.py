"""`messagehooks simulate`: realistic Landbot traffic, POSTed as Landbot's MessageHooks do.

By concern: `options` (what traffic to make), `languages` and `script` (a pure, seeded generator
of one chat's conversation(s)), `schedule` (many interleaved chats at a target rate, bursts a few
tens of milliseconds out of order) and `runner` (`simulate`: one message per POST with Landbot's
headers and retries, on a `Clock` the caller may replace).

Time: a script's times are seconds since its chat started; `time_scale` multiplies them, so
0.01 turns a four-minute chat into 2.4 s (tests). Timestamps are the wall-clock time each message
is due, so event time is live time (scaled) and jittered sends arrive out of order.

The conversation gap: given the pipeline's `conversation_gap`, every pause inside a conversation
stays within half of it and a returning customer comes back after four of it, so the pipeline
closes each conversation where the script ends it (docs/operations.md, "Simulated traffic").
Without a chat budget or a duration the traffic goes on at its rate until stopped; it always ends
with one line saying when and why.
"""

from devtools.simulate.languages import AGENTS, LANGUAGES
from devtools.simulate.options import PAUSE_SHARE_OF_GAP, RETURN_GAPS, SimulationOptions
from devtools.simulate.runner import (
    CUT_SHORT_WAIT,
    REAL_CLOCK,
    RETRY_GAPS,
    UNREACHABLE,
    WAIT_STEP,
    Clock,
    RealClock,
    SimulationSummary,
    simulate,
)
from devtools.simulate.schedule import mean_messages, schedule
from devtools.simulate.script import DROPOFF, ChatScript, Scripted, chat_script

__all__ = [
    "AGENTS",
    "CUT_SHORT_WAIT",
    "DROPOFF",
    "LANGUAGES",
    "PAUSE_SHARE_OF_GAP",
    "REAL_CLOCK",
    "RETRY_GAPS",
    "RETURN_GAPS",
    "UNREACHABLE",
    "WAIT_STEP",
    "ChatScript",
    "Clock",
    "RealClock",
    "Scripted",
    "SimulationOptions",
    "SimulationSummary",
    "chat_script",
    "mean_messages",
    "schedule",
    "simulate",
]
