"""Settings of every process, read once from ``MESSAGEHOOKS_*`` variables at the entry point.

`load_settings(environ)` is the only reader of the environment; tests pass a dict. Each setting
is declared once, as a field of `Settings` (`messagehooks.variables.setting`: type, default,
help, checks); the loader, ``--help`` and docs/CONFIG.md are made from that declaration. This
module loads no starlette until `load_settings` runs, so `features` can read the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from messagehooks.errors import ConfigError
from messagehooks.hooks import DEV_HOOK as DEV_HOOK
from messagehooks.hooks import DEV_HOOKS as DEV_HOOKS
from messagehooks.hooks import HOOK_NAME as HOOK_NAME
from messagehooks.hooks import Hook as Hook
from messagehooks.hooks import parse_hooks as parse_hooks
from messagehooks.paths import absolute_path, absolute_uri, default_data_dir
from messagehooks.topics import Topics
from messagehooks.variables import ENV_PREFIX as ENV_PREFIX
from messagehooks.variables import (
    Declaration,
    above_zero,
    declarations,
    not_empty,
    not_negative,
    parse_proportions,
    positive,
    seconds,
    setting,
)

if TYPE_CHECKING:  # loaded on first use only (see the module docstring)
    from starlette.datastructures import Secret

    from messagehooks.pii.ids import Pseudonyms

DEMO_CONVERSATION_GAP = 120.0
"""Seconds of silence that close a conversation while `up` simulates traffic and no
MESSAGEHOOKS_CONVERSATION_GAP is set: the labels (unanswered pairs, conversation rows) of a chat
come two minutes after its end, not thirty (the simulator keeps its pauses within half of it)."""


def _text_or_none(value: str) -> str | None:
    return value.strip() or None


def _lowercase(value: str) -> str:
    return value.strip().lower()


def _hooks(value: str) -> tuple[Hook, ...]:
    return parse_hooks(value) if value.strip() else DEV_HOOKS


def _optional_secret(value: str) -> Secret | None:
    from starlette.datastructures import Secret

    return Secret(value) if value else None


def _optional_path(value: str) -> Path | None:
    return absolute_path(value.strip()) if value.strip() else None


def _optional_uri(value: str) -> str | None:
    return absolute_uri(value.strip()) if value.strip() else None


def _data_dir(value: str) -> Path:
    return absolute_path(value.strip()) if value.strip() else default_data_dir()


def _proportions(value: str) -> tuple[float, float, float]:
    return parse_proportions(value) if value.strip() else SPLIT_PROPORTIONS


SPLIT_PROPORTIONS = (0.8, 0.1, 0.1)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a process needs; built once by `load_settings` and passed down."""

    kafka_bootstrap: str | None = setting(
        None,
        help="host:port of a Kafka cluster; unset = start the project's own broker",
        convert=_text_or_none,
        unset="(unset: the project's own broker)",
    )
    broker_port: int = setting(
        19092, help="port of the project's own broker, on loopback (only when KAFKA_BOOTSTRAP is unset)"
    )
    broker_engine: str = setting(
        "auto",
        help="own broker: kafka (Apache Kafka, durable), tansu (embedded, in memory) or auto",
        convert=_lowercase,
    )
    kafka_libs: Path | None = setting(
        None,
        help="directory of the Apache Kafka jars; unset = .venv/kafka/libs (filled by make venv)",
        convert=_optional_path,
        unset="(unset: `.venv/kafka/libs`)",
    )
    kafka_heap: str = setting(
        "512m",
        help="maximum JVM heap of the kafka engine's broker (the initial heap is a quarter)",
        convert=str.strip,
    )
    topic_prefix: str = setting("landbot.", help="prefix of every topic name")
    partitions: int = setting(6, help="partitions of each topic created at startup", check=positive)
    replication_factor: int = setting(1, help="replication factor of topics created at startup")
    hooks: tuple[Hook, ...] = setting(
        DEV_HOOKS,
        help="JSON list of hooks {name, channel, tokens (or token) | open: true}, or a path to a "
        '.json/.toml file; checked at start (docs/ingest.md "Hooks")',
        convert=_hooks,
        unset="(unset: dev hook `default`, open: no token)",
        type_name="JSON list or file path",
    )
    hooks_configured: bool = False
    """Whether HOOKS was set (derived by the loader: no variable of its own)."""
    dev_hook: bool = setting(
        True,
        help="with HOOKS unset, serve the dev hook `default`, open to any request without a token; "
        "false = the ingest refuses to start without HOOKS (docker-compose.yml sets false)",
    )
    reject_with_202: bool = setting(
        False, help="answer authenticated-but-invalid payloads with 202 (still dead-lettered)"
    )
    produce_timeout: float = setting(
        5.0, help="seconds to wait for Kafka's ack before spooling the request to disk"
    )
    max_body_bytes: int = setting(1_048_576, help="largest request body accepted (413 above)")
    max_messages_per_request: int = setting(1000, help="most messages in one POST (413 above)")
    host: str = setting(
        "127.0.0.1",
        help="address the ingest and the metrics servers listen on (0.0.0.0 to accept Landbot from outside)",
    )
    port: int = setting(8000, help="port of the ingest")
    data_dir: Path = setting(
        help="directory of the spool, the datasets and the logs (relative: to the working directory)",
        factory=default_data_dir,
        convert=_data_dir,
        unset="(unset: `data/` of the checkout)",
    )
    log_level: str = setting("INFO", help="level of the JSON logs", convert=str.upper)
    simulate_rate: float = setting(
        5.0,
        help="messages/s of simulated Landbot traffic `up` posts to its first hook (0 = none)",
        check=not_negative,
    )
    simulate_time_scale: float = setting(
        1.0,
        help="multiplies the simulator's think times, its pauses and a returning customer's "
        "absence (0.25 = a 4x faster demo, with a 4x shorter CONVERSATION_GAP and a 4x higher SIMULATE_RATE)",
        check=above_zero,
    )
    conversation_gap: float = setting(
        1800.0,
        help="seconds of silence that close a conversation (unset, `up` uses "
        f"{DEMO_CONVERSATION_GAP:g} while it simulates traffic)",
    )
    allowed_lateness: float = setting(
        10.0, help="seconds of event time a message may arrive late and still be ordered"
    )
    context_turns: int = setting(3, help="turns of context kept with each turn pair")
    split_seed: str = setting(
        "messagehooks-splits-1",
        help="seed of each chat's train/validation/test split (a keyed hash of its chat id, "
        "features/splits.py); another seed, another assignment",
        check=not_empty,
    )
    split_proportions: tuple[float, float, float] = setting(
        SPLIT_PROPORTIONS,
        help="shares of chats in train, validation and test, summing to 1",
        convert=_proportions,
        unset=f"`{','.join(map(str, SPLIT_PROPORTIONS))}`",
        type_name="train,validation,test",
    )
    worker_id: str = setting(
        "messagehooks-streams", help="Faust app id = consumer group of the stream workers"
    )
    table_store: str = setting("memory://", help="Faust table store URL (memory:// or rocksdb://)")
    session_timeout: float = setting(2.0, help="Kafka consumer session timeout of stream workers, in seconds")
    processing_guarantee: str = setting(
        "at_least_once",
        help="Faust processing guarantee of stream workers: at_least_once, or exactly_once "
        "(Kafka transactions; Apache Kafka only, see docs/streams.md)",
        convert=_lowercase,
    )
    dataset_uri: str | None = setting(
        None,
        help="root of the Delta tables: a directory or an object-store URL; unset = DATA_DIR/datasets",
        convert=_optional_uri,
        unset="(unset: `DATA_DIR/datasets`)",
    )
    sink_flush_interval: float = setting(
        1.0, help="seconds between the dataset sink's commits (one Delta version each)"
    )
    sink_flush_rows: int = setting(
        20_000, help="rows buffered for one table that trigger a commit before the interval", check=positive
    )
    sink_group: str = setting(
        "messagehooks-sink", help="consumer group of the dataset sinks (its offsets live in the Delta log)"
    )
    pii_masking: bool = setting(
        True,
        help="mask personal data (e-mails, phones, cards, IBANs, customer fields) in every dataset "
        "table, by the policy of messagehooks/pii/policy.py",
    )
    mask_topics: bool = setting(
        True,
        help="mask personal data in the turn-pairs and conversations topics (the ones for other "
        "teams) by the same policy; false = they carry the original text, as raw, messages and "
        "dead-letter do",
    )
    id_salt: Secret | None = setting(
        None,
        help="secret salt of the pseudonymous ids: set, every chat and sender id becomes an HMAC of it "
        '(in every topic and table); changing it starts new ids (docs/dataset.md "Pseudonymous ids")',
        convert=_optional_secret,
        unset="(unset: only ids holding personal data are hashed, with a public salt)",
    )
    retention_hours: float = setting(
        168.0,
        help="hours every table version stays readable: files a compaction replaced are deleted "
        "this long after it, by the sink's vacuum (at least 1 h) and by `dataset compact`",
        check=not_negative,
    )
    compact_files: int = setting(
        100,
        help="files the sink writes to a table before it merges them into large ones and "
        "checkpoints the log; 0 = only `dataset compact`",
        check=not_negative,
    )
    vacuum_interval: float = setting(
        3600.0,
        help="seconds between the sink's vacuums of each table (files past RETENTION_HOURS "
        "deleted); 0 = only `dataset compact`",
        check=not_negative,
    )
    rate_limit: float = setting(
        0.0, help="requests/s each hook accepts before 429 (burst: 1 s of them, at least 1); 0 = no limit"
    )
    request_timeout: float = setting(
        10.0, help="seconds a client may take to send its request body (408, closed)"
    )
    max_header_bytes: int = setting(
        32_768,
        help="largest request line + headers accepted (431 and the connection closed above)",
        check=positive,
    )
    header_timeout: float = setting(
        10.0,
        help="seconds a client may take to send its request line and headers (408, closed)",
        check=seconds,
    )
    request_deadline: float = setting(
        30.0, help="seconds from a request's first byte to the end of its answer (408, closed)", check=seconds
    )
    worker_metrics_port: int = setting(9101, help="port of a stream worker's Prometheus /metrics (0 = none)")
    sink_metrics_port: int = setting(9102, help="port of a dataset sink's Prometheus /metrics (0 = none)")
    ready_needs_sink: bool = setting(
        False,
        help="the ingest's /readyz also answers 503 while the sink's Delta commits fail "
        "(read from DATA_DIR/health/sink.json; `up` sets it)",
    )

    @property
    def embedded(self) -> bool:
        """True when the project runs its own broker, Tansu or Kafka (no bootstrap configured)."""
        return self.kafka_bootstrap is None

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between consumer heartbeats of the workers and the sink: ~0.15 of the session.

        Tansu holds every JoinGroup for half the session timeout, so the session is short and the
        heartbeat a fraction of it; never below 0.1 s.
        """
        return round(max(0.1, self.session_timeout * 0.15), 3)

    @property
    def bootstrap(self) -> str:
        """``host:port`` of Kafka: the configured cluster, or the embedded broker's port."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def pseudonyms(self) -> Pseudonyms:
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


SETTINGS: Mapping[str, Declaration] = declarations(Settings)
"""Every setting's declaration, by field name, in the order of docs/CONFIG.md."""


class _Helps(Mapping[str, str]):
    """The help of each variable by its name without the prefix: a view of `SETTINGS`, not a copy."""

    def __getitem__(self, env: str) -> str:
        declaration = SETTINGS.get(env.lower())
        if declaration is None or declaration.env != env:
            raise KeyError(env)
        return declaration.help

    def __iter__(self) -> Iterator[str]:
        return (declaration.env for declaration in SETTINGS.values())

    def __len__(self) -> int:
        return len(SETTINGS)


SETTINGS_HELP: Mapping[str, str] = _Helps()
"""``{"DATA_DIR": help, ...}``: what ``--help`` and docs/CONFIG.md show for each variable."""


def default(name: str) -> Any:
    """The declared default of setting `name`, for code that runs without a `Settings` (features)."""
    return SETTINGS[name].default


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Build `Settings` from ``MESSAGEHOOKS_*`` variables in `environ`.

    Raises:
        ConfigError: a variable is malformed (the message names it and what was expected).
    """
    from starlette.config import Config

    config = Config(environ=environ, env_prefix=ENV_PREFIX)
    try:
        values = {name: declaration.read(config) for name, declaration in SETTINGS.items()}
    except ValueError as exc:
        # starlette.config names the variable and the cast that failed.
        raise ConfigError(f"{exc}; check the {ENV_PREFIX}* variables") from exc
    return Settings(**values, hooks_configured=bool(environ.get(f"{ENV_PREFIX}HOOKS", "").strip()))


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
