"""The event bus: how spans, dead letters and training metrics leave a process.

:class:`KafkaBus` publishes to the real broker (kafka-python producer, ``acks=all``, batched with a linger);
:class:`FileBus` appends one JSON line per event to ``<dir>/<topic>.jsonl`` for runs without a broker. Both
take an optional topic prefix, so tests and parallel deployments can share a broker without sharing topics.
:class:`BusSink` lets a :class:`~dspy_rl.traces.TraceCollector` publish its spans on their topics (keyed by
trace id, so one trace's spans stay ordered in one partition).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dspy_rl.traces.spans import Span

logger = logging.getLogger(__name__)


class EventBus(Protocol):
    """Publishes events to named topics."""

    def publish(self, topic: str, value: dict[str, Any] | bytes, key: str | bytes | None = None) -> None:
        """Queue one event (a dict is sent as compact JSON)."""

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until every queued event is acknowledged / written; raises if that fails."""

    def close(self) -> None:
        """Flush and release resources."""


def _encode(value: dict[str, Any] | bytes) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


def _key(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


@dataclass(frozen=True)
class ProducerOptions:
    """The producer settings both Kafka clients take (see :class:`ProducerBus`)."""

    bootstrap_servers: str
    linger_ms: int
    batch_size: int
    compression_type: str | None
    client_id: str
    request_timeout_ms: int


class ProducerBus:
    """What the Kafka producer buses share (:class:`KafkaBus` here, ``ConfluentBus`` on librdkafka): the producer
    options, the topic prefix, and failed sends collected until :meth:`flush` raises them as ``error_type``.
    A subclass opens its producer (``_open``), sends one encoded event (``_send``), waits for acknowledgements
    (``_flush``) and releases the producer (``_release``)."""

    #: What :meth:`flush` raises when a send failed.
    error_type: type[Exception] = RuntimeError

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        topic_prefix: str = "",
        linger_ms: int = 20,
        batch_size: int = 1 << 20,
        compression_type: str | None = None,
        client_id: str = "dspy-rl",
        request_timeout_ms: int = 30000,
    ) -> None:
        self.topic_prefix = topic_prefix
        self._errors: list[Any] = []
        self._producer = self._open(
            ProducerOptions(
                bootstrap_servers, linger_ms, batch_size, compression_type, client_id, request_timeout_ms
            )
        )

    def _open(self, o: ProducerOptions) -> Any:
        raise NotImplementedError

    def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> None:
        raise NotImplementedError

    def _flush(self, timeout_s: float | None) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Free the producer after the final flush (nothing by default)."""

    def publish(
        self,
        topic: str,
        value: dict[str, Any] | bytes,
        key: str | bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._send(self.topic_prefix + topic, _encode(value), _key(key), headers)

    def flush(self, timeout_s: float | None = None) -> None:
        self._flush(timeout_s)
        if self._errors:
            errors, self._errors = self._errors, []
            first = errors[0]
            if isinstance(first, BaseException):  # kafka-python hands over the exception
                raise self.error_type(f"{len(errors)} Kafka publish(es) failed; first: {first!r}") from first
            raise self.error_type(
                f"{len(errors)} Kafka publish(es) failed; first: {first}"
            )  # librdkafka error

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._release()


class KafkaBus(ProducerBus):
    """Kafka producer (kafka-python) with ``acks=all`` (durable once :meth:`flush` returns) and batching."""

    def _open(self, o: ProducerOptions) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(
            bootstrap_servers=o.bootstrap_servers,
            acks="all",
            linger_ms=o.linger_ms,
            batch_size=o.batch_size,
            compression_type=o.compression_type,
            client_id=o.client_id,
            request_timeout_ms=o.request_timeout_ms,
            max_request_size=16 << 20,
        )

    def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> None:
        future = self._producer.send(topic, value=value, key=key, headers=headers)
        future.add_errback(self._errors.append)

    def _flush(self, timeout_s: float | None) -> None:
        self._producer.flush(timeout=timeout_s)

    def _release(self) -> None:
        self._producer.close()


class FileBus:
    """Appends events as JSON lines to ``<directory>/<prefix><topic>.jsonl`` (no broker needed)."""

    def __init__(self, directory: str | Path, *, topic_prefix: str = "") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.topic_prefix = topic_prefix
        self._files: dict[str, Any] = {}
        self._lock = threading.Lock()

    def path(self, topic: str) -> Path:
        """The file a topic is written to."""
        return self.directory / f"{self.topic_prefix}{topic}.jsonl"

    def publish(
        self,
        topic: str,
        value: dict[str, Any] | bytes,
        key: str | bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        line = _encode(value).replace(b"\n", b" ") + b"\n"
        with self._lock:
            handle = self._files.get(topic)
            if handle is None:
                handle = self._files[topic] = open(self.path(topic), "ab")  # noqa: SIM115 (kept open)
            handle.write(line)

    def flush(self, timeout_s: float | None = None) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.flush()

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()


class BusSink:
    """A collector sink that publishes spans to their Kafka topics (``agent.actions`` / ``rewards`` / ...)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    def write(self, spans: Sequence[Span]) -> None:
        for span in spans:
            self.bus.publish(span.topic, span.to_json_bytes(), key=span.trace_id)

    def flush(self) -> None:
        self.bus.flush()
