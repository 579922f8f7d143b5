"""Settings of every process, read once from ``MESSAGEHOOKS_*`` variables at the entry point.

`load_settings(environ)` is the only reader of the environment; tests pass a dict. Each field's
docstring in `SETTINGS_HELP` is the text of ``--help`` and of docs/CONFIG.md.
"""

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.config import Config
from starlette.datastructures import Secret

from messagehooks.errors import ConfigError
from messagehooks.paths import absolute_path, absolute_uri, default_data_dir
from messagehooks.topics import Topics

if TYPE_CHECKING:  # the detectors load on first use only: every process reads its settings
    from messagehooks.pii.ids import Pseudonyms

ENV_PREFIX = "MESSAGEHOOKS_"
HOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEV_HOOK = "default"


@dataclass(frozen=True, slots=True)
class Hook:
    """One MessageHook: Landbot posts to ``/hooks/{name}`` with one of `tokens`.

    An `open` hook accepts any request without a token (the dev hook, or a configured hook with
    ``"open": true``); a hook without a channel accepts messages of any channel.
    """

    name: str
    channel: str | None = None
    tokens: tuple[Secret, ...] = ()
    open: bool = False


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs; built once by `load_settings` and passed down."""

    kafka_bootstrap: str | None = None
    broker_port: int = 19092
    broker_engine: str = "auto"
    kafka_libs: Path | None = None
    kafka_heap: str = "512m"
    topic_prefix: str = "landbot."
    partitions: int = 6
    replication_factor: int = 1
    hooks: tuple[Hook, ...] = (Hook(DEV_HOOK, open=True),)
    hooks_configured: bool = False
    dev_hook: bool = True
    reject_with_202: bool = False
    produce_timeout: float = 5.0
    max_body_bytes: int = 1_048_576
    max_messages_per_request: int = 1000
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=default_data_dir)
    log_level: str = "INFO"
    simulate_rate: float = 5.0
    simulate_time_scale: float = 1.0
    conversation_gap: float = 1800.0
    allowed_lateness: float = 10.0
    context_turns: int = 3
    worker_id: str = "messagehooks-streams"
    table_store: str = "memory://"
    session_timeout: float = 2.0
    processing_guarantee: str = "at_least_once"
    dataset_uri: str | None = None
    sink_flush_interval: float = 1.0
    sink_flush_rows: int = 20_000
    sink_group: str = "messagehooks-sink"
    pii_masking: bool = True
    mask_topics: bool = True
    id_salt: Secret | None = None
    retention_hours: float = 168.0
    compact_files: int = 100
    vacuum_interval: float = 3600.0
    rate_limit: float = 0.0
    request_timeout: float = 10.0
    max_header_bytes: int = 32_768
    header_timeout: float = 10.0
    request_deadline: float = 30.0
    worker_metrics_port: int = 9101
    sink_metrics_port: int = 9102
    ready_needs_sink: bool = False

    @property
    def embedded(self) -> bool:
        """True when the project runs its own broker, Tansu or Kafka (no bootstrap configured)."""
        return self.kafka_bootstrap is None

    @property
    def bootstrap(self) -> str:
        """``host:port`` of Kafka: the configured cluster, or the embedded broker's port."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def pseudonyms(self) -> "Pseudonyms":
        """How the ingest pseudonymizes chat, sender and message ids (messagehooks/pii/ids.py)."""
        from messagehooks.pii.ids import Pseudonyms  # lazily: see the import above

        return Pseudonyms(str(self.id_salt).encode() if self.id_salt is not None else b"")

    @property
    def topics(self) -> Topics:
        """Topic names for the configured prefix."""
        return Topics(self.topic_prefix)

    @property
    def dataset_root(self) -> str:
        """Where the Delta tables live: a local directory or an object-store URL (s3://, ...)."""
        return self.dataset_uri or str(self.data_dir / "datasets")

    @property
    def sink_health_path(self) -> Path:
        """Where the dataset sink reports whether its Delta commits succeed (read by /readyz)."""
        return self.data_dir / "health" / "sink.json"

    @property
    def spool_path(self) -> Path:
        """SQLite file of the ingest's durable spool."""
        return self.data_dir / "spool" / "spool.sqlite3"

    def hook(self, name: str) -> Hook | None:
        """The hook called `name`, if configured."""
        for hook in self.hooks:
            if hook.name == name:
                return hook
        return None


SETTINGS_HELP: dict[str, str] = {
    "KAFKA_BOOTSTRAP": "host:port of a Kafka cluster; unset = start the project's own broker",
    "BROKER_PORT": "port of the project's own broker, on loopback (only when KAFKA_BOOTSTRAP is unset)",
    "BROKER_ENGINE": "own broker: kafka (Apache Kafka, durable), tansu (embedded, in memory) or auto",
    "KAFKA_LIBS": "directory of the Apache Kafka jars; unset = .venv/kafka/libs (filled by make venv)",
    "KAFKA_HEAP": "maximum JVM heap of the kafka engine's broker (the initial heap is a quarter)",
    "TOPIC_PREFIX": "prefix of every topic name",
    "PARTITIONS": "partitions of each topic created at startup",
    "REPLICATION_FACTOR": "replication factor of topics created at startup",
    "HOOKS": "JSON list of hooks {name, channel, tokens (or token) | open: true}, or a path to a "
    '.json/.toml file; checked at start (docs/ingest.md "Hooks")',
    "DEV_HOOK": "with HOOKS unset, serve the dev hook `default`, open to any request without a token; "
    "false = the ingest refuses to start without HOOKS (docker-compose.yml sets false)",
    "REJECT_WITH_202": "answer authenticated-but-invalid payloads with 202 (still dead-lettered)",
    "PRODUCE_TIMEOUT": "seconds to wait for Kafka's ack before spooling the request to disk",
    "MAX_BODY_BYTES": "largest request body accepted (413 above)",
    "MAX_MESSAGES_PER_REQUEST": "most messages in one POST (413 above)",
    "HOST": "address the ingest and the metrics servers listen on (0.0.0.0 to accept Landbot from outside)",
    "PORT": "port of the ingest",
    "DATA_DIR": "directory of the spool, the datasets and the logs (relative: to the working directory)",
    "LOG_LEVEL": "level of the JSON logs",
    "SIMULATE_RATE": "messages/s of simulated Landbot traffic `up` posts to its first hook (0 = none)",
    "SIMULATE_TIME_SCALE": "multiplies the simulator's think times, its pauses and a returning customer's "
    "absence (0.25 = a 4x faster demo, with a 4x shorter CONVERSATION_GAP and a 4x higher SIMULATE_RATE)",
    "CONVERSATION_GAP": "seconds of silence that close a conversation (unset, `up` uses 120 while it "
    "simulates traffic)",
    "ALLOWED_LATENESS": "seconds of event time a message may arrive late and still be ordered",
    "CONTEXT_TURNS": "turns of context kept with each turn pair",
    "WORKER_ID": "Faust app id = consumer group of the stream workers",
    "TABLE_STORE": "Faust table store URL (memory:// or rocksdb://)",
    "SESSION_TIMEOUT": "Kafka consumer session timeout of stream workers, in seconds",
    "PROCESSING_GUARANTEE": "Faust processing guarantee of stream workers: at_least_once, or exactly_once "
    "(Kafka transactions; Apache Kafka only, see docs/streams.md)",
    "DATASET_URI": "root of the Delta tables: a directory or an object-store URL; unset = DATA_DIR/datasets",
    "SINK_FLUSH_INTERVAL": "seconds between the dataset sink's commits (one Delta version each)",
    "SINK_FLUSH_ROWS": "rows buffered for one table that trigger a commit before the interval",
    "SINK_GROUP": "consumer group of the dataset sinks (its offsets live in the Delta log)",
    "PII_MASKING": "mask personal data (e-mails, phones, cards, IBANs, customer fields) in every dataset "
    "table, by the policy of messagehooks/pii/policy.py",
    "MASK_TOPICS": "mask personal data in the turn-pairs and conversations topics (the ones for other "
    "teams) by the same policy; false = they carry the original text, as raw, messages and dead-letter do",
    "ID_SALT": "secret salt of the pseudonymous ids: set, every chat and sender id becomes an HMAC of it "
    '(in every topic and table); changing it starts new ids (docs/dataset.md "Pseudonymous ids")',
    "RETENTION_HOURS": "hours every table version stays readable: files a compaction replaced are deleted "
    "this long after it, by the sink's vacuum (at least 1 h) and by `dataset compact`",
    "COMPACT_FILES": "files the sink writes to a table before it merges them into large ones and "
    "checkpoints the log; 0 = only `dataset compact`",
    "VACUUM_INTERVAL": "seconds between the sink's vacuums of each table (files past RETENTION_HOURS "
    "deleted); 0 = only `dataset compact`",
    "RATE_LIMIT": "requests/s each hook accepts before 429 (burst: 1 s of them, at least 1); 0 = no limit",
    "REQUEST_TIMEOUT": "seconds a client may take to send its request body (408, closed)",
    "MAX_HEADER_BYTES": "largest request line + headers accepted (431 and the connection closed above)",
    "HEADER_TIMEOUT": "seconds a client may take to send its request line and headers (408, closed)",
    "REQUEST_DEADLINE": "seconds from a request's first byte to the end of its answer (408, closed)",
    "WORKER_METRICS_PORT": "port of a stream worker's Prometheus /metrics (0 = none)",
    "SINK_METRICS_PORT": "port of a dataset sink's Prometheus /metrics (0 = none)",
    "READY_NEEDS_SINK": "the ingest's /readyz also answers 503 while the sink's Delta commits fail "
    "(read from DATA_DIR/health/sink.json; `up` sets it)",
}


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Build `Settings` from ``MESSAGEHOOKS_*`` variables in `environ`.

    Raises:
        ConfigError: a variable is malformed (the message names it and what was expected).
    """
    config = Config(environ=environ, env_prefix=ENV_PREFIX)
    try:
        hooks_value = config("HOOKS", cast=str, default="")
        hooks = parse_hooks(hooks_value) if hooks_value.strip() else (Hook(DEV_HOOK, open=True),)
        bootstrap = config("KAFKA_BOOTSTRAP", cast=str, default="").strip() or None
        defaults = Settings()
        return Settings(
            kafka_bootstrap=bootstrap,
            broker_port=config("BROKER_PORT", cast=int, default=defaults.broker_port),
            broker_engine=config("BROKER_ENGINE", cast=str, default=defaults.broker_engine).strip().lower(),
            kafka_libs=_optional_path(config("KAFKA_LIBS", cast=str, default="")),
            kafka_heap=config("KAFKA_HEAP", cast=str, default=defaults.kafka_heap).strip(),
            topic_prefix=config("TOPIC_PREFIX", cast=str, default=defaults.topic_prefix),
            partitions=_positive(config("PARTITIONS", cast=int, default=6), "PARTITIONS"),
            replication_factor=config("REPLICATION_FACTOR", cast=int, default=1),
            hooks=hooks,
            hooks_configured=bool(hooks_value.strip()),
            dev_hook=config("DEV_HOOK", cast=bool, default=True),
            reject_with_202=config("REJECT_WITH_202", cast=bool, default=False),
            produce_timeout=config("PRODUCE_TIMEOUT", cast=float, default=5.0),
            max_body_bytes=config("MAX_BODY_BYTES", cast=int, default=defaults.max_body_bytes),
            max_messages_per_request=config("MAX_MESSAGES_PER_REQUEST", cast=int, default=1000),
            host=config("HOST", cast=str, default=defaults.host),
            port=config("PORT", cast=int, default=defaults.port),
            data_dir=_data_dir(config("DATA_DIR", cast=str, default="")),
            log_level=config("LOG_LEVEL", cast=str, default="INFO").upper(),
            simulate_rate=_not_negative(config("SIMULATE_RATE", cast=float, default=5.0), "SIMULATE_RATE"),
            simulate_time_scale=_above_zero(
                config("SIMULATE_TIME_SCALE", cast=float, default=1.0), "SIMULATE_TIME_SCALE"
            ),
            conversation_gap=config("CONVERSATION_GAP", cast=float, default=1800.0),
            allowed_lateness=config("ALLOWED_LATENESS", cast=float, default=10.0),
            context_turns=config("CONTEXT_TURNS", cast=int, default=3),
            worker_id=config("WORKER_ID", cast=str, default=defaults.worker_id),
            table_store=config("TABLE_STORE", cast=str, default=defaults.table_store),
            session_timeout=config("SESSION_TIMEOUT", cast=float, default=2.0),
            processing_guarantee=config(
                "PROCESSING_GUARANTEE", cast=str, default=defaults.processing_guarantee
            )
            .strip()
            .lower(),
            dataset_uri=_optional_uri(config("DATASET_URI", cast=str, default="")),
            sink_flush_interval=config("SINK_FLUSH_INTERVAL", cast=float, default=1.0),
            sink_flush_rows=_positive(config("SINK_FLUSH_ROWS", cast=int, default=20_000), "SINK_FLUSH_ROWS"),
            sink_group=config("SINK_GROUP", cast=str, default=defaults.sink_group),
            pii_masking=config("PII_MASKING", cast=bool, default=True),
            mask_topics=config("MASK_TOPICS", cast=bool, default=True),
            id_salt=_optional_secret(config("ID_SALT", cast=str, default="")),
            retention_hours=_not_negative(
                config("RETENTION_HOURS", cast=float, default=168.0), "RETENTION_HOURS"
            ),
            compact_files=_not_negative(config("COMPACT_FILES", cast=int, default=100), "COMPACT_FILES"),
            vacuum_interval=_not_negative(
                config("VACUUM_INTERVAL", cast=float, default=3600.0), "VACUUM_INTERVAL"
            ),
            rate_limit=config("RATE_LIMIT", cast=float, default=0.0),
            request_timeout=config("REQUEST_TIMEOUT", cast=float, default=10.0),
            max_header_bytes=_positive(
                config("MAX_HEADER_BYTES", cast=int, default=32_768), "MAX_HEADER_BYTES"
            ),
            header_timeout=_seconds(config("HEADER_TIMEOUT", cast=float, default=10.0), "HEADER_TIMEOUT"),
            request_deadline=_seconds(
                config("REQUEST_DEADLINE", cast=float, default=30.0), "REQUEST_DEADLINE"
            ),
            worker_metrics_port=config("WORKER_METRICS_PORT", cast=int, default=defaults.worker_metrics_port),
            sink_metrics_port=config("SINK_METRICS_PORT", cast=int, default=defaults.sink_metrics_port),
            ready_needs_sink=config("READY_NEEDS_SINK", cast=bool, default=False),
        )
    except ValueError as exc:
        # starlette.config names the variable and the cast that failed.
        raise ConfigError(f"{exc}; check the {ENV_PREFIX}* variables") from exc


def _optional_secret(value: str) -> Secret | None:
    return Secret(value) if value else None


def _optional_path(value: str) -> Path | None:
    return absolute_path(value.strip()) if value.strip() else None


def _optional_uri(value: str) -> str | None:
    return absolute_uri(value.strip()) if value.strip() else None


def _data_dir(value: str) -> Path:
    return absolute_path(value.strip()) if value.strip() else default_data_dir()


_Number = TypeVar("_Number", int, float)


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ConfigError(f"{ENV_PREFIX}{name} must be at least 1, got {value}")
    return value


def _not_negative(value: _Number, name: str) -> _Number:
    if not value >= 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be 0 or more, got {value}")
    return value


def _above_zero(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be above 0, got {value}")
    return value


def _seconds(value: float, name: str) -> float:
    if not value > 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be a number of seconds above 0, got {value}")
    return value


def parse_hooks(value: str) -> tuple[Hook, ...]:
    """Hooks from a JSON list, or from a path to a JSON or TOML file (``[[hooks]]`` tables).

    Every hook is checked at start, so that a typo cannot leave a hook open: see `_hook`.

    Raises:
        ConfigError: malformed JSON/TOML or hook (one line naming the hook and the fix).
    """
    text = value.strip()
    if not text.startswith("["):
        path = Path(text)
        if not path.is_file():
            # Never echo the value: it may hold tokens.
            raise ConfigError(f"{ENV_PREFIX}HOOKS is neither a JSON list nor the path of an existing file")
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            return _hooks_from_items(_toml_hooks(path, text))
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{ENV_PREFIX}HOOKS is not valid JSON: {exc.msg} at {exc.pos}") from exc
    return _hooks_from_items(items)


HOOK_KEYS = ("name", "channel", "token", "tokens", "open")
"""The keys of a hook object; any other is refused (a misspelled "tokens" would open the hook)."""


def _toml_hooks(path: Path, text: str) -> Any:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{ENV_PREFIX}HOOKS file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(document) - {"hooks"})
    if unknown:
        raise ConfigError(
            f"{ENV_PREFIX}HOOKS file {path} has an unknown key {unknown[0]!r}"
            f"{_did_you_mean(unknown[0], ['hooks'])}; write the hooks as [[hooks]] tables"
        )
    return document.get("hooks", [])


def _hooks_from_items(items: Any) -> tuple[Hook, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{ENV_PREFIX}HOOKS must be a non-empty list of hook objects")
    hooks = tuple(_hook(index, item) for index, item in enumerate(items))
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{ENV_PREFIX}HOOKS has duplicate hook names: {sorted(names)}")
    return hooks


def _hook(index: int, item: Any) -> Hook:
    """One hook object: known keys only, a token unless ``"open": true``, a channel id or none."""
    where = f"{ENV_PREFIX}HOOKS[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str) or not HOOK_NAME.match(name):
        raise ConfigError(f"{where}.name must match {HOOK_NAME.pattern}, got {name!r}")
    where = f"{where} (hook {name!r})"
    unknown = sorted(set(item) - set(HOOK_KEYS))
    if unknown:
        raise ConfigError(
            f"{where} has an unknown key {unknown[0]!r}{_did_you_mean(unknown[0], HOOK_KEYS)}; "
            f"the keys are {', '.join(HOOK_KEYS)}"
        )
    tokens = _hook_tokens(where, item)
    is_open = item.get("open", False)
    if not isinstance(is_open, bool):
        raise ConfigError(f"{where}: open must be true or false, got {type(is_open).__name__}")
    if is_open and tokens:
        raise ConfigError(f'{where} has tokens and "open": true; an open hook takes no token: drop one')
    if not is_open and not tokens:
        raise ConfigError(
            f'{where} has no token: give "tokens": ["..."], or "open": true to accept any request '
            "without one (development only)"
        )
    return Hook(name=name, channel=_hook_channel(where, item.get("channel")), tokens=tokens, open=is_open)


def _hook_tokens(where: str, item: dict[str, Any]) -> tuple[Secret, ...]:
    if "token" in item and "tokens" in item:
        raise ConfigError(f'{where} has both "token" and "tokens": put every token in "tokens"')
    raw = item.get("tokens", [item["token"]] if "token" in item else [])
    if not isinstance(raw, list) or not all(isinstance(t, str) and t for t in raw):
        # Never echo the value: it may be a secret.
        raise ConfigError(f"{where} tokens must be non-empty strings")
    return tuple(Secret(t) for t in raw)


def _hook_channel(where: str, value: Any) -> str | None:
    """The Landbot channel id the hook tracks: a number or a non-blank string, as in messages."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        got = "an empty string" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{where}: channel must be a Landbot channel id such as 761536, got {got}")
    return str(value).strip()


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def require_hooks(settings: Settings) -> None:
    """Refuse to serve the open dev hook where it was not asked for (a deployment sets DEV_HOOK=false).

    Raises:
        ConfigError: no HOOKS and DEV_HOOK is false.
    """
    if not settings.hooks_configured and not settings.dev_hook:
        raise ConfigError(
            f"no {ENV_PREFIX}HOOKS configured and {ENV_PREFIX}DEV_HOOK is false: the ingest will not "
            f"serve the dev hook {DEV_HOOK!r}, open to anyone; set {ENV_PREFIX}HOOKS (hooks with tokens), "
            f"or {ENV_PREFIX}DEV_HOOK=true to accept any request on {DEV_HOOK!r} (development only)"
        )


def open_hook_warnings(settings: Settings) -> list[str]:
    """One line per hook that accepts requests without a token (logged by the ingest, shown by `up`)."""
    if not settings.hooks_configured:
        return [f"no {ENV_PREFIX}HOOKS configured: dev hook {DEV_HOOK!r} accepts any request without a token"]
    return [
        f'hook {hook.name!r} is open ("open": true): it accepts any request without a token'
        for hook in settings.hooks
        if hook.open
    ]
