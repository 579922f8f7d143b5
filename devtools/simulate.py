"""`messagehooks simulate`: realistic Landbot traffic, POSTed as Landbot's MessageHooks do.

Two halves: `chat_script` is a pure, seeded generator of one chat's conversation(s) — a shop bot
with a greeting, a dialog with buttons, text questions (name, e-mail, order number), media
blocks, free text in five languages, skewed think times, drop-offs that depend on the prompt,
escalations to a human agent (assign, agent messages, unassign), PII in some answers, and
returning customers — and `simulate` posts the scripts of many interleaved chats at a target
rate, one message per POST with Landbot's headers, retrying a failed delivery of the same
message the way Landbot does, and letting bursts arrive a few tens of milliseconds out of order.

Time: a script's times are seconds since its chat started; `time_scale` multiplies them, so
0.01 turns a four-minute chat into 2.4 s (tests). Timestamps are the wall-clock time each message
is due, so event time is live time (scaled) and jittered sends arrive out of order.

The conversation gap: given the pipeline's `conversation_gap`, every pause inside a conversation
stays within half of it and a returning customer comes back after four of it, so the pipeline
closes each conversation where the script ends it (docs/operations.md, "Simulated traffic").
Without a chat budget or a duration the traffic goes on at its rate until stopped; it always ends
with one line saying when and why.
"""

import asyncio
import heapq
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

import httpx

from messagehooks.errors import ConfigError

# Where a customer may leave without answering, and how likely (times `dropoff`).
DROPOFF = {"dialog": 0.10, "name": 0.12, "email": 0.30, "order": 0.18, "anything_else": 0.35}
RETRY_GAPS = (5.0, 10.0, 15.0, 20.0, 25.0)
"""Landbot's gaps between retries of a failed delivery (about 6 attempts over ~75 s)."""

LANGUAGES: dict[str, dict[str, Any]] = {
    "en": {
        "countries": ["united kingdom", "united states", "ireland"],
        "greeting": "Hi! I'm Shoppy, the assistant of the shop.",
        "dialog": "How can I help you today?",
        "options": ["Where is my order?", "Returns", "Talk to a human"],
        "name": "What's your name?",
        "email": "What's your e-mail, so we can write to you?",
        "order": "What's your order number?",
        "media": "Here is the tracking page of your parcel:",
        "anything_else": "Anything else I can do for you?",
        "bye": "Thanks for writing to us. Have a nice day!",
        "agent": [
            "Hello, this is {agent} from the support team.",
            "I'm checking it now.",
            "Done, anything else?",
        ],
        "free": ["Thanks!", "When will it arrive?", "ok", "Can I change the address?", "no, that's all"],
        "complaint": [
            "This is the third time I write, I want to talk to a person",
            "Terrible service, nobody answers",
        ],
        "no_email": "I'd rather not say",
        "names": ["John", "Emma", "Liam", "Olivia", "Noah"],
    },
    "es": {
        "countries": ["spain", "mexico", "argentina"],
        "greeting": "¡Hola! Soy Shoppy, el asistente de la tienda.",
        "dialog": "¿En qué te puedo ayudar?",
        "options": ["¿Dónde está mi pedido?", "Devoluciones", "Hablar con una persona"],
        "name": "¿Cómo te llamas?",
        "email": "¿Cuál es tu correo electrónico?",
        "order": "¿Cuál es tu número de pedido?",
        "media": "Aquí tienes el seguimiento de tu paquete:",
        "anything_else": "¿Algo más en lo que te pueda ayudar?",
        "bye": "¡Gracias por escribirnos!",
        "agent": ["Hola, soy {agent} del equipo de soporte.", "Lo estoy revisando.", "Listo, ¿algo más?"],
        "free": ["¡Gracias!", "¿Cuándo llega?", "vale", "¿Puedo cambiar la dirección?", "no, eso es todo"],
        "complaint": [
            "Es la tercera vez que escribo, quiero hablar con alguien",
            "Pésimo servicio, nadie responde",
        ],
        "no_email": "Prefiero no decirlo",
        "names": ["Ana", "Lucía", "Javier", "Carmen", "Diego"],
    },
    "pt": {
        "countries": ["brazil", "portugal"],
        "greeting": "Olá! Sou o Shoppy, o assistente da loja.",
        "dialog": "Como posso ajudar?",
        "options": ["Onde está meu pedido?", "Devoluções", "Falar com uma pessoa"],
        "name": "Qual é o seu nome?",
        "email": "Qual é o seu e-mail?",
        "order": "Qual é o número do pedido?",
        "media": "Aqui está o rastreamento do seu pacote:",
        "anything_else": "Posso ajudar em mais alguma coisa?",
        "bye": "Obrigado pelo contato!",
        "agent": ["Olá, aqui é {agent} do suporte.", "Estou verificando.", "Pronto, mais alguma coisa?"],
        "free": ["Obrigado!", "Quando chega?", "ok", "Posso mudar o endereço?", "não, é só isso"],
        "complaint": ["Já é a terceira vez que escrevo, quero falar com alguém", "Atendimento péssimo"],
        "no_email": "Prefiro não dizer",
        "names": ["João", "Maria", "Pedro", "Beatriz", "Lucas"],
    },
    "fr": {
        "countries": ["france", "belgium"],
        "greeting": "Bonjour ! Je suis Shoppy, l'assistant de la boutique.",
        "dialog": "Comment puis-je vous aider ?",
        "options": ["Où est ma commande ?", "Retours", "Parler à un conseiller"],
        "name": "Quel est votre nom ?",
        "email": "Quelle est votre adresse e-mail ?",
        "order": "Quel est votre numéro de commande ?",
        "media": "Voici le suivi de votre colis :",
        "anything_else": "Puis-je faire autre chose pour vous ?",
        "bye": "Merci de nous avoir écrit !",
        "agent": ["Bonjour, ici {agent} du support.", "Je vérifie.", "C'est fait, autre chose ?"],
        "free": [
            "Merci !",
            "Quand arrive-t-il ?",
            "d'accord",
            "Puis-je changer l'adresse ?",
            "non, c'est tout",
        ],
        "complaint": [
            "C'est la troisième fois que j'écris, je veux parler à quelqu'un",
            "Service déplorable",
        ],
        "no_email": "Je préfère ne pas le dire",
        "names": ["Camille", "Louis", "Léa", "Hugo", "Chloé"],
    },
    "de": {
        "countries": ["germany", "austria"],
        "greeting": "Hallo! Ich bin Shoppy, der Assistent des Shops.",
        "dialog": "Wie kann ich helfen?",
        "options": ["Wo ist meine Bestellung?", "Rücksendungen", "Mit einem Menschen sprechen"],
        "name": "Wie heißt du?",
        "email": "Wie lautet deine E-Mail-Adresse?",
        "order": "Wie lautet deine Bestellnummer?",
        "media": "Hier ist die Sendungsverfolgung:",
        "anything_else": "Kann ich sonst noch helfen?",
        "bye": "Danke für deine Nachricht!",
        "agent": ["Hallo, hier ist {agent} vom Support.", "Ich prüfe das.", "Erledigt, noch etwas?"],
        "free": ["Danke!", "Wann kommt es an?", "ok", "Kann ich die Adresse ändern?", "nein, das war's"],
        "complaint": [
            "Ich schreibe schon zum dritten Mal, ich will mit jemandem sprechen",
            "Schlechter Service",
        ],
        "no_email": "Das sage ich lieber nicht",
        "names": ["Lukas", "Anna", "Felix", "Mia", "Paul"],
    },
}
AGENTS = ["Ana", "Marc", "Sofia", "Tom"]


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What traffic to make; the generated statistics follow these numbers (tests check them).

    `chats` None: no chat budget; `duration` None: until stopped. `conversation_gap` is the
    pipeline's gap in wall-clock seconds (None: not known, pauses as drawn). `returning_after` is
    in script seconds (None: four gaps, or 7,200 s without a gap). `give_up_after`: seconds without
    a 2xx answer, while deliveries fail, after which the ingest counts as unreachable (None: never).
    """

    chats: int | None = None
    rate: float = 5.0
    duration: float | None = 60.0
    seed: int = 0
    dropoff: float = 1.0
    escalation: float = 0.15
    returning: float = 0.10
    pii: float = 0.25
    languages: tuple[str, ...] = tuple(LANGUAGES)
    time_scale: float = 1.0
    returning_after: float | None = None
    conversation_gap: float | None = None
    channel: int = 761536
    retry_scale: float = 1.0
    disorder: float = 0.2
    timeout: float = 10.0
    give_up_after: float | None = None

    def __post_init__(self) -> None:
        for name in ("escalation", "returning", "pii", "disorder"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"--{name} must be a probability between 0 and 1, got {value}")
        if self.rate <= 0 or self.time_scale <= 0 or (self.chats is not None and self.chats < 1):
            raise ConfigError("--rate, --time-scale must be > 0 and --chats >= 1")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError("--duration must be > 0 (or none: until stopped)")
        if self.conversation_gap is not None and self.conversation_gap <= 0:
            raise ConfigError(f"the conversation gap must be > 0 s, got {self.conversation_gap}")
        unknown = set(self.languages) - set(LANGUAGES)
        if unknown:
            raise ConfigError(f"unknown languages {sorted(unknown)}; choose from {', '.join(LANGUAGES)}")
        gap = self.conversation_gap
        if gap is not None and self.return_after * self.time_scale <= gap:
            raise ConfigError(
                f"--returning-after {self.return_after:g} s (x time scale {self.time_scale:g}) must exceed "
                f"the conversation gap ({gap:g} s, MESSAGEHOOKS_CONVERSATION_GAP): a returning customer "
                "starts a new conversation"
            )

    @property
    def return_after(self) -> float:
        """Script seconds from a customer's last message to their return."""
        if self.returning_after is not None:
            return self.returning_after
        if self.conversation_gap is None:
            return 7200.0
        return RETURN_GAPS * self.conversation_gap / self.time_scale

    @property
    def longest_pause(self) -> float:
        """Script seconds a conversation may stay silent between two messages: half the gap."""
        if self.conversation_gap is None:
            return math.inf
        return PAUSE_SHARE_OF_GAP * self.conversation_gap / self.time_scale


PAUSE_SHARE_OF_GAP = 0.5
"""Every pause inside a conversation stays within this share of the gap: the pipeline's delays
(retries aside) never make a continuing customer look gone."""
RETURN_GAPS = 4.0
"""A returning customer comes back after this many gaps (7,200 s for the default 1,800 s gap)."""


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


@dataclass
class SimulationSummary:
    """What a simulation sent, what its chats did, and why it stopped."""

    chats: int = 0
    messages: int = 0
    posts: int = 0
    retries: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    escalations: int = 0
    dropoffs: Counter[str] = field(default_factory=Counter)
    returning: int = 0
    stopped: str = ""
    """Why the traffic ended: duration reached, chat budget reached, interrupted, ingest unreachable."""

    def started(self, script: ChatScript) -> None:
        """Count a chat that starts."""
        self.chats += 1
        self.escalations += script.escalated
        self.returning += script.returning
        if script.dropped_at:
            self.dropoffs[script.dropped_at] += 1

    @property
    def delivered_all(self) -> bool:
        """Whether every message it sent got a 2xx, and it did not stop on an unreachable ingest."""
        return self.failed == 0 and not self.stopped.startswith(UNREACHABLE)

    def line(self) -> str:
        """One line for humans."""
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"simulate: {self.chats} chats, {self.messages} messages in {self.posts} POSTs ({statuses}), "
            f"{self.retries} retries, {self.failed} failed; {self.escalations} escalations, "
            f"{sum(self.dropoffs.values())} drop-offs, {self.returning} returning customers"
        )


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


@dataclass
class _Reach:
    """Whether the ingest answers: when it last gave a 2xx, and the failure since, if any."""

    last_ok: float
    failure: str | None = None

    def ok(self) -> None:
        self.last_ok, self.failure = time.time(), None

    def failed(self, what: str) -> None:
        self.failure = what

    def unreachable(self, give_up_after: float | None) -> str | None:
        """The stop reason once nothing but failures came back for `give_up_after` seconds."""
        silent = time.time() - self.last_ok
        if give_up_after is None or self.failure is None or silent < give_up_after:
            return None
        return f"{UNREACHABLE} (no 2xx answer for {silent:.0f} s; last: {self.failure})"


UNREACHABLE = "ingest unreachable"


async def simulate(
    options: SimulationOptions,
    url: str,
    *,
    token: str | None = None,
    out: TextIO,
    transport: httpx.AsyncBaseTransport | None = None,
    concurrency: int = 32,
    delivered: dict[str, int] | None = None,
    stop: threading.Event | None = None,
    stopped_wait: float | None = None,
) -> SimulationSummary:
    """POST the chats' messages at about `options.rate` messages/s until one of the stop reasons.

    The reasons: `duration` reached, the chat budget reached (every message of every chat sent),
    `stop` set (interrupted: a test ends its traffic after its faults; the CLI on SIGTERM), or the
    ingest unreachable for `give_up_after`. One line says when and which, then the summary.
    Once `stop` is set, the deliveries in flight get `stopped_wait` seconds (None: Landbot's retry
    window, as at the end of `duration`: a test ends its traffic with the retries it owes).
    `delivered`, if given, maps the `_raw.uuid` of every message that got a 2xx to that status (tests).
    """
    summary = SimulationSummary()
    started = time.time()
    deadline = None if options.duration is None else started + options.duration
    reach = _Reach(started)

    def interrupted() -> str | None:
        if stop is not None and stop.is_set():
            return "interrupted"
        return reach.unreachable(options.give_up_after)

    headers = {"User-Agent": "landbot/webhooks", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    sent = 0
    async with httpx.AsyncClient(headers=headers, timeout=options.timeout, transport=transport) as client:
        for send_at, item in schedule(options, started, until=deadline, on_start=summary.started):
            if deadline is not None and max(send_at, time.time()) >= deadline:
                summary.stopped = f"duration reached ({options.duration:g} s)"
                break  # what is due later (a returning visit) is not waited for, not sent
            if reason := await _sleep_until(send_at, interrupted) or await _take_slot(slots, interrupted):
                summary.stopped = reason
                break
            deliver = _deliver(client, url, item, options, summary, reach, delivered)
            task = asyncio.create_task(_released(deliver, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            if sent % 500 == 0:
                out.write(f"simulate: {sent} messages sent\n")
        else:
            summary.stopped = (
                f"chat budget reached ({options.chats} chats, every message sent)"
                if options.chats is not None and summary.chats >= options.chats
                else f"duration reached ({options.duration:g} s; no chat starts before its end)"
            )
        out.write(f"simulate: stopped at {_clock()} after {time.time() - started:.0f} s: {summary.stopped}\n")
        if tasks:
            if summary.stopped.startswith(UNREACHABLE):
                wait = CUT_SHORT_WAIT  # their retries would fail too
            elif summary.stopped == "interrupted" and stopped_wait is not None:
                wait = stopped_wait
            else:
                wait = _retry_window(options)
            if summary.retries:
                out.write(
                    f"simulate: up to {wait:.0f} s for {len(tasks)} deliveries Landbot would still retry\n"
                )
            await asyncio.wait(tasks, timeout=wait)
            unfinished = list(tasks)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
    out.write(summary.line() + "\n")
    return summary


CUT_SHORT_WAIT = 3.0
"""Seconds a simulation that gave up on the ingest, or one the CLI stops (`up` stops it within 10),
gives its deliveries in flight; otherwise they get Landbot's retry window."""


def _retry_window(options: SimulationOptions) -> float:
    return max(5.0, sum(RETRY_GAPS) * options.retry_scale + 10)


def _clock() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


async def _sleep_until(when: float, interrupted: Callable[[], str | None]) -> str | None:
    """Sleep until `when` (yielding at least once), in short steps; a stop reason cuts it short."""
    while True:
        if reason := interrupted():
            return reason
        left = when - time.time()
        await asyncio.sleep(min(max(left, 0.0), WAIT_STEP))
        if left <= WAIT_STEP:
            return interrupted()


async def _take_slot(slots: asyncio.Semaphore, interrupted: Callable[[], str | None]) -> str | None:
    """Take a delivery slot; while all are busy, look at the stop reasons every `WAIT_STEP`."""
    while slots.locked():
        getter = asyncio.ensure_future(slots.acquire())
        done, _ = await asyncio.wait({getter}, timeout=WAIT_STEP)
        if getter in done:
            return None
        getter.cancel()
        try:
            await getter
            return None  # it got the slot as it was being cancelled
        except asyncio.CancelledError:
            pass
        if reason := interrupted():
            return reason
    await slots.acquire()  # a slot is free: at once
    return None


WAIT_STEP = 0.05
"""Seconds between looks at the clock, the free delivery slots and the stop reasons."""


def _stamped(item: Scripted, timestamp: float) -> Scripted:
    message = {
        **item.message,
        "timestamp": round(timestamp, 6),
        "_raw": {**item.message["_raw"], "timestamp": round(timestamp, 6)},
    }
    return Scripted(item.at, message, item.trace)


async def _released(delivery: Awaitable[None], slots: asyncio.Semaphore) -> None:
    try:
        await delivery
    finally:
        slots.release()


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    item: Scripted,
    options: SimulationOptions,
    summary: SimulationSummary,
    reach: _Reach,
    delivered: dict[str, int] | None,
) -> None:
    """One message, one POST; a non-2xx or no answer is retried with the same body and trace."""
    summary.messages += 1
    body = httpx.Request("POST", url, json={"messages": [item.message]}).content
    for attempt, gap in enumerate((0.0, *RETRY_GAPS)):
        if attempt:
            summary.retries += 1
            await asyncio.sleep(gap * options.retry_scale)
        summary.posts += 1
        try:
            response = await client.post(url, content=body, headers={"sentry-trace": item.trace})
        except httpx.TransportError as exc:
            reach.failed(f"{type(exc).__name__} from {url}")
            continue
        summary.statuses[response.status_code] += 1
        if response.is_success:
            reach.ok()
            if delivered is not None:
                delivered[item.message["_raw"]["uuid"]] = response.status_code
            return
        reach.failed(f"{response.status_code} from {url}")
    summary.failed += 1
