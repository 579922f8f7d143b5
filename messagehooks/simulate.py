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
"""

import asyncio
import heapq
import math
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
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
    """What traffic to make; the generated statistics follow these numbers (tests check them)."""

    chats: int = 100
    rate: float = 5.0
    duration: float = 60.0
    seed: int = 0
    dropoff: float = 1.0
    escalation: float = 0.15
    returning: float = 0.10
    pii: float = 0.25
    languages: tuple[str, ...] = tuple(LANGUAGES)
    time_scale: float = 1.0
    returning_after: float = 7200.0
    channel: int = 761536
    retry_scale: float = 1.0
    disorder: float = 0.2
    timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("escalation", "returning", "pii", "disorder"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ConfigError(f"--{name} must be a probability between 0 and 1, got {value}")
        if self.rate <= 0 or self.duration <= 0 or self.chats < 1 or self.time_scale <= 0:
            raise ConfigError("--rate, --duration, --time-scale must be > 0 and --chats >= 1")
        unknown = set(self.languages) - set(LANGUAGES)
        if unknown:
            raise ConfigError(f"unknown languages {sorted(unknown)}; choose from {', '.join(LANGUAGES)}")


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
        builder.clock += options.returning_after
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
    """What a simulation sent, and what its chats did."""

    chats: int = 0
    messages: int = 0
    posts: int = 0
    retries: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    escalations: int = 0
    dropoffs: Counter[str] = field(default_factory=Counter)
    returning: int = 0

    def line(self) -> str:
        """One line for humans."""
        statuses = ", ".join(f"{code}: {n}" for code, n in sorted(self.statuses.items()))
        return (
            f"simulate: {self.chats} chats, {self.messages} messages in {self.posts} POSTs ({statuses}), "
            f"{self.retries} retries, {self.failed} failed; {self.escalations} escalations, "
            f"{sum(self.dropoffs.values())} drop-offs, {self.returning} returning customers"
        )


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
) -> SimulationSummary:
    """POST the chats' messages at about `options.rate` messages/s until `duration` or the last chat ends.

    `delivered`, if given, maps the `_raw.uuid` of every message that got a 2xx to that status (tests).
    `stop`, once set, ends the traffic early like the end of `duration` (a test ends it a few seconds
    after its faults instead of guessing a duration long enough for a loaded machine).
    """
    summary = SimulationSummary()
    mean_messages = sum(len(chat_script(options, i).messages) for i in range(min(options.chats, 200))) / min(
        options.chats, 200
    )
    chat_gap = mean_messages / options.rate  # seconds between chat starts, on average
    arrivals = random.Random(f"{options.seed}:arrivals")  # noqa: S311 - simulation
    started = time.time()
    deadline = started + options.duration
    due: list[tuple[float, int, Scripted]] = []
    next_start, index, order = started, 0, 0

    def admit_until(horizon: float) -> None:
        """Script the chats that start before `horizon` (lazily: a week of traffic is never in memory)."""
        nonlocal next_start, index, order
        while index < options.chats and next_start <= min(horizon, deadline):
            script = chat_script(options, index)
            summary.chats += 1
            summary.escalations += script.escalated
            summary.returning += script.returning
            if script.dropped_at:
                summary.dropoffs[script.dropped_at] += 1
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

    headers = {"User-Agent": "landbot/webhooks", "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(headers=headers, timeout=options.timeout, transport=transport) as client:
        while time.time() < deadline and not (stop is not None and stop.is_set()):
            admit_until(due[0][0] if due else next_start)
            if not due:
                break  # every chat is scripted and sent
            at, _, item = heapq.heappop(due)
            if at >= deadline:
                break  # the rest is due after the end (a returning visit): not waited for, not sent
            await asyncio.sleep(max(0.0, at - time.time()))
            await slots.acquire()
            task = asyncio.create_task(_deliver(client, url, item, options, summary, slots, delivered))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if summary.messages and summary.messages % 500 == 0:
                out.write(f"simulate: {summary.messages} messages sent\n")
        if tasks:
            wait = max(5.0, sum(RETRY_GAPS) * options.retry_scale + 10)
            if summary.retries:
                out.write(
                    f"simulate: up to {wait:.0f} s for {len(tasks)} deliveries Landbot would still retry\n"
                )
            await asyncio.wait(tasks, timeout=wait)
    out.write(summary.line() + "\n")
    return summary


def _stamped(item: Scripted, timestamp: float) -> Scripted:
    message = {
        **item.message,
        "timestamp": round(timestamp, 6),
        "_raw": {**item.message["_raw"], "timestamp": round(timestamp, 6)},
    }
    return Scripted(item.at, message, item.trace)


async def _deliver(
    client: httpx.AsyncClient,
    url: str,
    item: Scripted,
    options: SimulationOptions,
    summary: SimulationSummary,
    slots: asyncio.Semaphore,
    delivered: dict[str, int] | None,
) -> None:
    """One message, one POST; a non-2xx or no answer is retried with the same body and trace."""
    try:
        summary.messages += 1
        body = httpx.Request("POST", url, json={"messages": [item.message]}).content
        for attempt, gap in enumerate((0.0, *RETRY_GAPS)):
            if attempt:
                summary.retries += 1
                await asyncio.sleep(gap * options.retry_scale)
            summary.posts += 1
            try:
                response = await client.post(url, content=body, headers={"sentry-trace": item.trace})
            except httpx.TransportError:
                continue
            summary.statuses[response.status_code] += 1
            if response.is_success:
                if delivered is not None:
                    delivered[item.message["_raw"]["uuid"]] = response.status_code
                return
        summary.failed += 1
    finally:
        slots.release()
