"""Prometheus metrics of the ingest, in a registry of their own (one per app instance).

Labels are bounded: hook names are configured ones (unknown hooks count as ``_unknown``),
message types Landbot does not document count as ``other``; no token or text is ever a label.
"""

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

KNOWN_TYPES = frozenset({"text", "button", "dialog", "image", "iframe", "event"})
KNOWN_SENDERS = frozenset({"customer", "bot", "agent", "sys"})


class IngestMetrics:
    """The ingest's counters, gauges and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "messagehooks_requests",
            "HTTP requests to hook endpoints, by hook and status code",
            ["hook", "status"],
            registry=self.registry,
        )
        self.messages = Counter(
            "messagehooks_messages",
            "Messages accepted, by message type and sender role",
            ["type", "sender"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "messagehooks_dead_letters",
            "Payloads or messages dead-lettered, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.unauthorized = Counter(
            "messagehooks_unauthorized",
            "Requests rejected with 401 (counted, never stored)",
            registry=self.registry,
        )
        self.duplicates = Counter(
            "messagehooks_duplicates_seen",
            "Messages whose id this ingest process already accepted recently (Landbot retries)",
            registry=self.registry,
        )
        self.produce_seconds = Histogram(
            "messagehooks_produce_seconds",
            "Time from produce to Kafka's ack (acks=all) for one request's records",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.connections_cut = Counter(
            "messagehooks_connections_cut",
            "Connections closed by the ingest's limits before a request was whole, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "messagehooks_spool_depth",
            "Records in the on-disk spool waiting for Kafka",
            registry=self.registry,
        )

        # Labelled children, looked up once: `.labels()` costs ~5 us per call on the hot path.
        self._children: dict[tuple[str, ...], Any] = {}

    def count_request(self, hook: str, status: int) -> None:
        """Count one hook request by hook name (configured names only) and status code."""
        self._child(self.requests, "requests", hook, str(status)).inc()

    def count_message(self, message_type: str, sender: str) -> None:
        """Count one accepted message with bounded label values."""
        self._child(
            self.messages,
            "messages",
            message_type if message_type in KNOWN_TYPES else "other",
            sender if sender in KNOWN_SENDERS else "other",
        ).inc()

    def _child(self, metric: Any, name: str, *labels: str) -> Any:
        key = (name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
