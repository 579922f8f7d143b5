"""One chat's script: a pure, seeded function of the options and the chat's number.

A shop bot with a greeting, a dialog with buttons, text questions (name, e-mail, order number),
media blocks, free text in five languages, skewed think times, drop-offs that depend on the
prompt, escalations to a human agent (assign, agent messages, unassign), PII in some answers,
and returning customers. A script's times are seconds since its chat started.
"""

import math
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from devtools.simulate.languages import AGENTS, LANGUAGES
from devtools.simulate.options import SimulationOptions

# Where a customer may leave without answering, and how likely (times `dropoff`).
DROPOFF = {"dialog": 0.10, "name": 0.12, "email": 0.30, "order": 0.18, "anything_else": 0.35}


@dataclass(frozen=True, slots=True)
class Scripted:
    """One message of a script: when it is due (seconds since the chat started) and what it is."""

    at: float
    message: dict[str, Any]
    trace: str


@dataclass
class ChatScript:
    """One customer's chat: its messages in event order, and what happens in it."""

    chat: int
    language: str
    messages: list[Scripted] = field(default_factory=list)
    dropped_at: str | None = None
    escalated: bool = False
    returning: bool = False
    pii: bool = False


def chat_script(options: SimulationOptions, index: int) -> ChatScript:
    """The script of chat number `index`: a pure function of the options' seed and `index`."""
    rng = random.Random(f"{options.seed}:{index}")  # noqa: S311 - simulation, reproducible by seed
    language = rng.choice(options.languages)
    words = LANGUAGES[language]
    chat = 70_000_000 + (options.seed % 1000) * 100_000 + index
    builder = _Builder(rng, options, chat, language, rng.choice(words["countries"]))
    script = ChatScript(chat=chat, language=language, messages=builder.messages)
    escalates = rng.random() < options.escalation  # a customer who will want a human
    script.dropped_at = _conversation(builder, words, escalates, script, full=True)
    if rng.random() < options.returning:
        script.returning = True
        builder.clock += options.return_after
        _conversation(builder, words, False, script, full=False)
    return script


def _conversation(
    builder: "_Builder", words: dict[str, Any], escalates: bool, script: ChatScript, full: bool
) -> str | None:
    """One conversation of the chat; returns the prompt the customer left at, if they did."""
    rng, b = builder.rng, builder
    b.bot("text", words["greeting"])
    b.bot("dialog", words["dialog"], options=words["options"], pause=0.6)
    if b.drops("dialog"):
        return "dialog"
    asks_human = escalates and rng.random() < 0.8
    choice = 2 if asks_human else rng.choice([0, 1])
    b.customer("button", words["options"][choice], payload=f"${choice}")
    if not full:
        b.bot("text", words["bye"])
        return None
    if not asks_human:
        b.bot("text", words["name"])
        if not escalates and b.drops("name"):  # who wants a human does not give up before
            return "name"
        b.customer("text", rng.choice(words["names"]))
        b.bot("text", words["email"])
        if not escalates and b.drops("email"):
            return "email"
        if rng.random() < builder.options.pii:
            script.pii = True
            name = rng.choice(words["names"]).lower()
            b.customer("text", f"{name}.{rng.randint(1, 999)}@example.com")
        else:
            b.customer("text", words["no_email"])
        if choice == 0:
            b.bot("text", words["order"])
            if not escalates and b.drops("order"):
                return "order"
            b.customer("text", f"A-{rng.randint(10000, 99999)}")
            b.bot("text", words["media"])
            b.bot("image", None, pause=0.3)
            b.bot("iframe", "https://track.example.com/parcel", pause=0.3)
        b.bot("text", words["anything_else"])
        if not escalates and b.drops("anything_else"):
            return "anything_else"
        if escalates:
            b.customer("text", rng.choice(words["complaint"]))
        else:
            text = rng.choice(words["free"])
            if rng.random() < builder.options.pii / 2:
                script.pii = True
                pairs = " ".join(str(rng.randint(10, 99)) for _ in range(3))
                text += f" +34 6{rng.randint(10, 99)} {pairs}"
            b.customer("text", text)
    if escalates:
        script.escalated = True
        agent = rng.choice(AGENTS)
        b.event("assign", pause=_lognormal(rng, 20, 0.7))
        lines = words["agent"]
        b.agent(lines[0].format(agent=agent))
        b.customer("text", rng.choice(words["free"]))
        b.agent(lines[1], pause=_lognormal(rng, 15, 0.6))
        b.agent(lines[2], pause=_lognormal(rng, 30, 0.6))
        b.customer("text", rng.choice(words["free"]))
        if rng.random() < 0.5:
            b.sys("Conversation closed by the agent")
        b.event("unassign", pause=1.0)
    else:
        b.bot("text", words["bye"])
    return None


class _Builder:
    """Appends Landbot-shaped messages to a script, advancing its clock."""

    def __init__(
        self, rng: random.Random, options: SimulationOptions, chat: int, language: str, country: str
    ):
        self.rng, self.options, self.chat, self.country = rng, options, chat, country
        self.customer_id = chat + 1000  # differs from the chat id, as in real traffic
        self.clock = 0.0
        self.seq = 0
        self.messages: list[Scripted] = []

    def drops(self, prompt: str) -> bool:
        return self.rng.random() < min(1.0, DROPOFF[prompt] * self.options.dropoff)

    def bot(
        self, kind: str, body: str | None, *, options: list[str] | None = None, pause: float = 0.8
    ) -> None:
        self._add(kind, "bot", 1, body, pause=self.rng.uniform(0.3, 1.5) * pause, options=options)

    def customer(self, kind: str, body: str, payload: str | None = None) -> None:
        think = min(120.0, _lognormal(self.rng, 4.0, 0.8) + len(body) / 8)
        self._add(kind, "customer", self.customer_id, body, pause=think, payload=payload)

    def agent(self, body: str, pause: float = 8.0) -> None:
        self._add("text", "agent", 555, body, pause=pause)

    def sys(self, body: str) -> None:
        self._add("text", "sys", 0, body, pause=1.0)

    def event(self, action: str, pause: float) -> None:
        self._add("event", None, 0, None, pause=pause, action=action)

    def _add(
        self,
        kind: str,
        sender: str | None,
        sender_id: int,
        body: str | None,
        *,
        pause: float,
        payload: str | None = None,
        options: list[str] | None = None,
        action: str | None = None,
    ) -> None:
        if pause > self.options.longest_pause:  # redrawn below it: no pile-up at the limit
            pause = self.options.longest_pause * self.rng.uniform(0.5, 1.0)
        self.clock += pause
        self.seq += 1
        author = {"customer": "user"}.get(sender or "", sender)
        raw: dict[str, Any] = {
            "chat": self.chat,
            "uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "seq": self.seq,
            "type": kind,
            "channel": self.options.channel,
            "message": body,
            "read": True,
            "extra": {},
        }
        if author is not None:
            raw["author_type"] = author
        data: dict[str, Any] = {"body": body}
        if payload is not None:
            data["payload"] = raw["payload"] = payload
        if options is not None:
            data["buttons"] = list(options)
        message: dict[str, Any] = {
            "_raw": raw,
            "type": kind,
            "data": data,
            "customer": {
                "id": self.customer_id,
                "country": self.country,
                "name": f"visitor #{self.customer_id}",
            },
            "channel": {"id": self.options.channel, "name": "simulated shop", "type": "landbot"},
        }
        if sender is not None:
            message["sender"] = {"id": sender_id, "name": f"{sender} #{sender_id}", "type": sender}
        if action is not None:
            message["action"] = action
        trace = f"{self.rng.getrandbits(128):032x}-{self.rng.getrandbits(64):016x}-1"
        self.messages.append(Scripted(self.clock, message, trace))


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return rng.lognormvariate(math.log(median), sigma)
