"""Keyword arguments of ``faust.App`` for the stream workers (the choices: docs/streams.md)."""

import logging
from pathlib import Path
from typing import Any

from messagehooks.engines import resolve
from messagehooks.errors import ConfigError
from messagehooks.settings import Settings

GUARANTEES = ("at_least_once", "exactly_once")

#: Loggers raised to WARNING by `quiet_faust_loggers`: +17 % throughput (measured).
FAUST_LOGGERS = ("", "faust", "mode", "aiokafka")


def faust_app_settings(settings: Settings) -> dict[str, Any]:
    """``faust.App`` keyword arguments (everything but the app id) for `settings`.

    The session timeout is short because Tansu holds every JoinGroup for half of it; the
    heartbeat is a fraction of it (`Settings.heartbeat_interval`, the sink's too), and the
    request timeout is at least the session timeout (Faust refuses less) and more than its half
    (Tansu's join wait). ``at_least_once`` unless
    ``exactly_once`` is asked for, on Apache Kafka only (`processing_guarantee`); the dataset is
    exactly once either way, by the idempotent sink. Call
    `streams.patches.apply_faust_fixes` before the app starts, with ``transactions``
    for exactly_once (Faust's own leaves the outputs out of its transactions, docs/streams.md).

    Args:
        settings: the process's settings.

    Returns:
        Keyword arguments for ``faust.App(settings.worker_id, **kwargs)``.
    """
    session = settings.session_timeout
    return {
        "broker": f"kafka://{settings.bootstrap}",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": settings.heartbeat_interval,
        # Faust's default (90 s); aiokafka also bounds JoinGroup with it, which a real Kafka
        # holds for up to the rebalance timeout (60 s).
        "broker_request_timeout": max(90.0, session),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "producer_linger": 0.005,
        "producer_max_batch_size": 65536,
        "producer_request_timeout": 10.0,
        "processing_guarantee": processing_guarantee(settings),
        "store": settings.table_store,
        "datadir": str(faust_datadir(settings)),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "web_enabled": False,
    }


def processing_guarantee(settings: Settings) -> str:
    """Faust's ``processing_guarantee`` for `settings`: exactly_once only on an Apache Kafka.

    Raises:
        ConfigError: an unknown value, or exactly_once on the embedded Tansu broker (it answers
            the transactional producer's InitProducerId with an error).
    """
    wanted = settings.processing_guarantee
    if wanted not in GUARANTEES:
        raise ConfigError(
            f"MESSAGEHOOKS_PROCESSING_GUARANTEE must be one of {', '.join(GUARANTEES)}, got {wanted!r}"
        )
    engine = resolve(settings)
    if wanted == "exactly_once" and engine.name == "tansu":
        raise ConfigError(
            f"exactly_once needs Apache Kafka transactions; the engine is tansu ({engine.reason})"
        )
    return wanted


def faust_datadir(settings: Settings) -> Path:
    """Faust's datadir (rocksdb:// table files live there), created with its parents.

    Faust creates it at start without parents, so a fresh checkout without ``data/`` failed.
    """
    path = settings.data_dir / "streams"
    path.mkdir(parents=True, exist_ok=True)
    return path


def quiet_faust_loggers(level: int = logging.WARNING) -> None:
    """Raise the root, Faust, mode and aiokafka loggers to `level`.

    ``faust.Worker`` with a log level of WARNING or above sets the root logger to DEBUG for its
    progress spinner (faust 0.15.3 ``Worker._setup_spinner_handler``), so every debug record is
    built and then dropped by the handler. Call this after the worker has set up logging, e.g.
    from a task or the start of an agent.

    Args:
        level: the level to set.
    """
    for name in FAUST_LOGGERS:
        logging.getLogger(name).setLevel(level)
