"""confluent-kafka (librdkafka) clients behind the interfaces the ingester and the bus already use.

:class:`ConfluentConsumer` offers the part of kafka-python's ``KafkaConsumer`` that
:class:`~dspy_rl.stream.ingest.KafkaIngester` calls (``poll`` returning records per partition, ``commit`` of
explicit offsets, ``seek``, ``assignment``, ``highwater``, ``position``, ``close``), so the ingester's guarantees
(commit only after the durable write, rewind on a failed write, drain on SIGTERM) hold unchanged; it raises
kafka-python's ``KafkaError`` types for failed commits, which the ingester already handles.
:class:`ConfluentBus` is the :class:`~dspy_rl.stream.bus.EventBus` on a librdkafka producer (``acks=all``).

librdkafka fetches in C threads and hands over batches (``consume``), which is where most of kafka-python's
per-record CPU goes; :func:`available` says whether the package is installed (``stream.client=auto`` picks it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import TopicPartition

from dspy_rl.stream.bus import ProducerBus, ProducerOptions

logger = logging.getLogger(__name__)

_INVALID = -1001  # librdkafka's OFFSET_INVALID


def available() -> bool:
    """Whether confluent-kafka is importable."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return False
    return True


class Record:
    """One consumed message with kafka-python's ``ConsumerRecord`` attribute names."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None, key: bytes | None,
                 timestamp: int) -> None:  # fmt: skip
        self.topic, self.partition, self.offset = topic, partition, offset
        self.value, self.key, self.timestamp = value, key, timestamp


class ConfluentConsumer:
    """A librdkafka consumer in a group, auto-commit off (see module docstring)."""

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        *,
        client_id: str = "dspy-rl-ingester",
        auto_offset_reset: str = "earliest",
        session_timeout_ms: int = 10000,
        max_partition_fetch_bytes: int = 8 << 20,
        fetch_max_bytes: int = 64 << 20,
        check_crcs: bool = True,
    ) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": auto_offset_reset,
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(1000, session_timeout_ms // 3),
                "max.poll.interval.ms": 300000,
                "max.partition.fetch.bytes": max_partition_fetch_bytes,
                "fetch.max.bytes": fetch_max_bytes,
                "check.crcs": check_crcs,
                # A group joined before its topics exist picks them up within a second or two.
                "topic.metadata.refresh.interval.ms": 2000,
                "queued.max.messages.kbytes": 256 << 10,
                "error_cb": self._on_error,
                "logger": logger,
            }
        )
        self._consumer.subscribe(list(topics))
        self._last_error: str | None = None
        self._reset = auto_offset_reset

    def _on_error(self, err: Any) -> None:
        text = str(err)
        if text != self._last_error:  # one line per distinct error, not one per retry
            logger.warning("kafka (librdkafka): %s", text)
            self._last_error = text

    @staticmethod
    def _ctp(tp: TopicPartition, offset: int | None = None) -> Any:
        from confluent_kafka import TopicPartition as CTP

        return CTP(tp.topic, tp.partition) if offset is None else CTP(tp.topic, tp.partition, offset)

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        messages = self._consumer.consume(num_messages=max(1, min(max_records or 100000, 1000000)),
                                          timeout=timeout_ms / 1000)  # fmt: skip
        out: dict[TopicPartition, list[Record]] = {}
        last: tuple[str, int] | None = None
        bucket: list[Record] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if not err.code() == -191:  # _PARTITION_EOF is not an error
                    self._on_error(err)
                continue
            topic, partition = msg.topic(), msg.partition()
            if (topic, partition) != last:
                last = (topic, partition)
                bucket = out.setdefault(TopicPartition(topic, partition), [])
            bucket.append(Record(topic, partition, msg.offset(), msg.value(), msg.key(), msg.timestamp()[1]))
        return out

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(p.topic, p.partition) for p in self._consumer.assignment()}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(self._ctp(tp, offset))

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's high watermark: librdkafka's cached one, or (none cached yet, e.g. no record fetched
        since the assignment) asked from the broker."""
        ctp = self._ctp(tp)
        try:
            _, high = self._consumer.get_watermark_offsets(ctp, cached=True)
            if high is None or high < 0:
                _, high = self._consumer.get_watermark_offsets(ctp, cached=False, timeout=5.0)
        except Exception:
            return None
        return None if high is None or high < 0 else int(high)

    def position(self, tp: TopicPartition, timeout_ms: int | None = None) -> int | None:
        """The next offset to consume: the fetch position, else (before the first fetch) the committed offset, else
        the log start (``auto_offset_reset=earliest``)."""
        ctp = self._ctp(tp)
        (p,) = self._consumer.position([ctp])
        if p.offset >= 0:
            return int(p.offset)
        try:
            (c,) = self._consumer.committed([ctp], timeout=(timeout_ms or 5000) / 1000)
            if c.offset >= 0:
                return int(c.offset)
            if self._reset == "earliest":  # no commit yet: consumption starts at the log start
                low, _ = self._consumer.get_watermark_offsets(ctp, cached=False, timeout=5.0)
                return int(low) if low is not None and low >= 0 else None
        except Exception:
            return None
        return None

    def commit(self, offsets: dict[TopicPartition, Any], timeout_ms: int | None = None) -> None:
        from confluent_kafka import KafkaException

        ctps = [self._ctp(tp, int(meta.offset)) for tp, meta in offsets.items()]
        try:
            results = self._consumer.commit(offsets=ctps, asynchronous=False)
        except KafkaException as exc:
            raise CommitFailedError(str(exc)) from exc
        failed = [p for p in results or [] if p.error is not None]
        if failed:
            raise CommitFailedError(
                f"{len(failed)} partition offsets not committed; first: {failed[0].error}"
            )

    def close(self, autocommit: bool = False) -> None:
        self._consumer.close()


class ConfluentBus(ProducerBus):
    """librdkafka producer with ``acks=all``: durable once :meth:`flush` returns (raises if a send failed)."""

    error_type = KafkaError

    def _open(self, o: ProducerOptions) -> Any:
        from confluent_kafka import Producer

        return Producer(
            {
                "bootstrap.servers": o.bootstrap_servers,
                "acks": "all",
                "linger.ms": o.linger_ms,
                "batch.size": o.batch_size,
                "compression.type": o.compression_type or "none",
                "client.id": o.client_id,
                "request.timeout.ms": o.request_timeout_ms,
                "message.max.bytes": 16 << 20,
                "queue.buffering.max.kbytes": 1 << 20,
                "error_cb": lambda err: logger.warning("kafka producer (librdkafka): %s", err),
                "logger": logger,
            }
        )

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(err)

    def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]] | None
    ) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=self._delivered)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.05)

    def _flush(self, timeout_s: float | None) -> None:
        left = self._producer.flush(-1 if timeout_s is None else timeout_s)
        if left:
            raise KafkaError(f"{left} Kafka publish(es) not acknowledged within {timeout_s}s")
