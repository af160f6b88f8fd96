"""Where the recording proxy's spool delivers span events: the SQLite trace store or Kafka topics.

Each is a callable taking a batch of wire events (:meth:`dspy_rl.traces.spans.Span.to_event`) that returns once the
batch is durable and raises otherwise (the spool then keeps the batch and retries). Both are idempotent on the
event id: the store ignores a span id it has, the stream ingester deduplicates redelivered events.
"""

from __future__ import annotations

import logging
from typing import Any

from dspy_rl.traces.spans import span_from_event

logger = logging.getLogger(__name__)


class StoreDelivery:
    """Insert events into the SQLite trace store at ``path`` (opened on first use, reopened after an error)."""

    def __init__(self, path: str, timeout_s: float = 1.0) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self._store = None

    def __call__(self, events: list[dict[str, Any]]) -> None:
        from dspy_rl.traces.store import TraceStore

        try:
            if self._store is None:
                self._store = TraceStore(self.path, timeout_s=self.timeout_s)
            self._store.insert_spans([span_from_event(e) for e in events], source="proxy")
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._store is not None:
            try:
                self._store.close()
            except Exception:
                pass
            self._store = None


class KafkaDelivery:
    """Publish events to their kind's topic (``agent.actions`` / ``agent.tool_usage`` / ``agent.rewards``), keyed by
    trace id, with ``acks=all``; a batch counts as delivered only when the broker acknowledged all of it."""

    def __init__(self, bootstrap_servers: str, topic_prefix: str = "", timeout_s: float = 5.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic_prefix = topic_prefix
        self.timeout_s = timeout_s
        self._producer = None

    def _connect(self):  # noqa: ANN202
        from kafka import KafkaProducer

        ms = int(self.timeout_s * 1000)
        return KafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            acks="all",
            linger_ms=5,
            request_timeout_ms=ms,
            max_block_ms=ms,
            retries=0,
            reconnect_backoff_max_ms=1000,
            client_id="dspy-rl-proxy",
        )

    def __call__(self, events: list[dict[str, Any]]) -> None:
        from dspy_rl.traces.spans import TOPIC_OF_KIND

        try:
            if self._producer is None:
                self._producer = self._connect()
            futures = []
            for e in events:
                topic = self.topic_prefix + TOPIC_OF_KIND[e["kind"]]
                value = span_from_event(e).to_json_bytes()
                futures.append(self._producer.send(topic, value=value, key=str(e["trace_id"]).encode()))
            self._producer.flush(timeout=self.timeout_s)
            for f in futures:
                f.get(timeout=self.timeout_s)  # raises the broker's error for that record
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close(timeout=1)
            except Exception:
                pass
            self._producer = None
