"""Kafka → trace store ingestion with at-least-once delivery and an idempotent store (effectively once).

The loop, per batch:

1. poll ``agent.actions``, ``agent.rewards``, ``agent.tool_usage`` (a consumer group on confluent-kafka or kafka-python, auto-commit
   off) until ``batch_size`` records or ``batch_max_wait_ms``;
2. parse every record;
3. write the valid spans in ONE SQLite transaction (a duplicate event id is skipped, not stored twice);
4. publish each malformed record to ``agent.dlq`` with the reason (counted), and flush (``acks=all``), so dead
   letters are durable too;
5. only then commit the consumer offsets (last offset + 1 per partition).

Steps 3-4 run on a writer thread while the consumer thread polls and parses the next batch (SQLite releases
the GIL while it works); results come back in poll order and step 5 stays on the consumer thread (kafka-python
consumers are not thread-safe), so the commit order and the guarantees are those of the sequential loop.

A crash anywhere before 5 redelivers the batch; the store skips what it already has, so nothing is lost and
nothing is stored twice. If 3 or 4 fail, the consumer seeks back to the batch start and retries it. Dead
letters are at-least-once as well (a retry after a failed flush may send one twice); each names its topic,
partition and offset, which identifies duplicates. A commit
that fails (broker down, rebalance) is logged and superseded by the next one. SIGTERM (via
:meth:`KafkaIngester.request_stop`) lets the current batch finish and commit, then closes cleanly.

Metrics (logged every ``metrics_interval_s``, and optionally appended to a JSONL file): events/s, consumer lag,
stored, duplicates skipped, DLQ count, commit failures.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dspy_rl.config import require
from dspy_rl.stream.bus import EventBus
from dspy_rl.stream.clients import make_bus, resolve_client
from dspy_rl.stream.config import IngestSettings
from dspy_rl.traces.spans import INGEST_TOPICS, TOPIC_DLQ, MalformedEvent, decode_event_row
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)

DLQ_PREVIEW_CHARS = 512
#: Larger payloads are cut in the dead letter (with their full size and SHA-256), so a huge malformed message
#: can never make the dead letter itself too large for the broker.
DLQ_MAX_PAYLOAD_BYTES = 256 << 10


@dataclass
class IngestConfig(IngestSettings):
    """What :class:`KafkaIngester` runs with: the ``ingest.*`` settings (:class:`IngestSettings`, declared there)
    plus the broker connection (from ``stream.*`` on the command line) and the topics."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, ``host:port[,host:port]`` (``stream.bootstrap_servers``)."""
    group_id: str = "dspy-rl-ingest"
    """Consumer group; ingesters in one group split the partitions (``stream.group_id``)."""
    topic_prefix: str = ""
    """Prefix of every topic name (``stream.topic_prefix``; isolates tests and deployments on one broker)."""
    topics: tuple[str, ...] = INGEST_TOPICS
    """Topics to consume (before the prefix)."""
    dlq_topic: str = TOPIC_DLQ
    """Dead-letter topic for malformed messages (before the prefix)."""
    metrics_path: str | None = None
    """Append metrics snapshots as JSON lines to this file."""
    client: str = "auto"
    """Kafka client library: ``confluent`` (librdkafka), ``kafka-python``, or ``auto`` (confluent when installed)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            bool(self.bootstrap_servers),
            "stream.bootstrap_servers",
            self.bootstrap_servers,
            "host:port[,host:port]",
        )
        require(len(self.topics) > 0, "topics", self.topics, "at least one topic")
        require(
            self.client in ("auto", "confluent", "kafka-python"), "stream.client", self.client,
            "auto, confluent or kafka-python",
        )  # fmt: skip


@dataclass
class IngestMetrics:
    """Counters of one ingester run."""

    events: int = 0
    """Records consumed (valid + malformed)."""
    stored: int = 0
    """Spans newly written to the store."""
    duplicates: int = 0
    """Valid records the store already had (redeliveries)."""
    dlq: int = 0
    """Malformed records sent to the dead-letter topic."""
    batches: int = 0
    """Committed batches."""
    retried_batches: int = 0
    """Batches rewound and retried after a store or DLQ failure."""
    commit_failures: int = 0
    """Offset commits that failed (superseded by a later commit; records may be redelivered)."""
    lag: int | None = None
    """Records behind the high watermark, summed over assigned partitions (None before assignment)."""
    elapsed_s: float = 0.0
    """Seconds since the run started."""
    events_per_s: float = 0.0
    """events / elapsed_s."""
    dlq_reasons: dict[str, int] = field(default_factory=dict)
    """DLQ count by reason kind (:attr:`~dspy_rl.traces.spans.MalformedEvent.kind`, a bounded set of keys)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Batch:
    """One polled batch on its way through the pipeline."""

    generation: int
    rows: list[tuple]
    dead_letters: list[tuple[Any, str, str]]
    """(record, reason, kind) of each malformed record."""
    first: dict[Any, int]
    next_offsets: dict[Any, int]
    inserted: int = 0
    error: BaseException | None = None


def dead_letter(record: Any, reason: str, kind: str = "invalid_event") -> dict[str, Any]:
    """The DLQ payload for a Kafka record: origin, reason, the raw bytes (base64; cut beyond
    :data:`DLQ_MAX_PAYLOAD_BYTES`, with size and SHA-256 of the whole) and a text preview."""
    raw = record.value or b""
    kept = raw[:DLQ_MAX_PAYLOAD_BYTES]
    return {
        "reason": reason,
        "kind": kind,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp,
        "key_b64": base64.b64encode(record.key).decode() if record.key else None,
        "payload_b64": base64.b64encode(kept).decode(),
        "payload_bytes": len(raw),
        "payload_truncated": len(kept) < len(raw),
        "payload_sha256": hashlib.sha256(raw).hexdigest(),
        "payload_preview": raw[:DLQ_PREVIEW_CHARS].decode("utf-8", errors="replace"),
        "failed_at": time.time(),
    }


class KafkaIngester:
    """Consumes span events from Kafka into a :class:`TraceStore` (see module docstring).

    ``consumer`` and ``dlq_bus`` may be injected (already configured); by default they are built from ``config``.
    """

    def __init__(
        self,
        store: TraceStore,
        config: IngestConfig,
        *,
        consumer: Any | None = None,
        dlq_bus: EventBus | None = None,
        on_batch: Callable[[IngestMetrics], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.metrics = IngestMetrics()
        self.on_batch = on_batch
        self._stop = False
        self._closed = False
        self.client = resolve_client(config.client) if consumer is None else "injected"
        self._consumer = consumer if consumer is not None else self._make_consumer()
        self._owns_bus = dlq_bus is None
        self._dlq = (
            dlq_bus
            if dlq_bus is not None
            else make_bus(
                config.bootstrap_servers,
                "kafka-python" if self.client == "injected" else self.client,
                topic_prefix=config.topic_prefix,
                client_id="dspy-rl-dlq",
            )
        )
        self._started = time.monotonic()
        self._last_metrics = self._started
        # Pipeline: this thread polls and parses batch k+1 while the writer thread stores batch k (SQLite
        # releases the GIL while it works). Results come back in order; offsets are committed here, after.
        self._generation = 0
        self._in_flight: collections.deque[_Batch] = collections.deque()
        self._todo: queue.Queue[_Batch | None] = queue.Queue(maxsize=config.pipeline_depth)
        self._done: queue.Queue[_Batch] = queue.Queue()
        self._writer = threading.Thread(target=self._writer_loop, name="ingest-writer", daemon=True)
        self._writer.start()

    def _make_consumer(self) -> Any:
        c = self.config
        if self.client == "confluent":
            from dspy_rl.stream.confluent import ConfluentConsumer

            return ConfluentConsumer(
                c.bootstrap_servers,
                c.group_id,
                [c.topic_prefix + t for t in c.topics],
                client_id=f"{c.group_id}-ingester",
                auto_offset_reset=c.auto_offset_reset,
                session_timeout_ms=c.session_timeout_ms,
                max_partition_fetch_bytes=c.max_partition_fetch_bytes,
                fetch_max_bytes=c.fetch_max_bytes,
                check_crcs=c.check_crcs,
            )
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(
            bootstrap_servers=c.bootstrap_servers,
            group_id=c.group_id,
            client_id=f"{c.group_id}-ingester",
            enable_auto_commit=False,
            auto_offset_reset=c.auto_offset_reset,
            max_poll_records=c.batch_size,
            max_partition_fetch_bytes=c.max_partition_fetch_bytes,
            fetch_max_bytes=c.fetch_max_bytes,
            check_crcs=c.check_crcs,
            # A batch (parse + SQLite + commit) must finish well within this or the group evicts us.
            max_poll_interval_ms=300000,
            session_timeout_ms=c.session_timeout_ms,
            heartbeat_interval_ms=max(1000, c.session_timeout_ms // 3),
        )
        consumer.subscribe([c.topic_prefix + t for t in c.topics])
        return consumer

    def request_stop(self) -> None:
        """Finish the current batch, commit it, and return from :meth:`run` (safe from a signal handler)."""
        self._stop = True

    @property
    def stopping(self) -> bool:
        """True once a stop was requested."""
        return self._stop

    # -- one batch ------------------------------------------------------------------------------------
    def _poll_batch(self) -> dict[Any, list[Any]]:
        """Poll until ``batch_size`` records, ``batch_max_wait_ms``, or a stop request."""
        c = self.config
        batch: dict[Any, list[Any]] = {}
        count = 0
        deadline = time.monotonic() + c.batch_max_wait_ms / 1000
        while count < c.batch_size and not self._stop:
            polled = self._consumer.poll(timeout_ms=c.poll_timeout_ms, max_records=c.batch_size - count)
            for tp, records in polled.items():
                batch.setdefault(tp, []).extend(records)
                count += len(records)
            if time.monotonic() >= deadline or (not polled and count):
                break
        return batch

    def _prepare(self, polled: dict[Any, list[Any]]) -> _Batch:
        """Consumer thread: parse the polled records into store rows and dead letters."""
        rows: list[tuple] = []
        dead_letters: list[tuple[Any, str, str]] = []
        for records in polled.values():
            for record in records:
                try:
                    rows.append(decode_event_row(record.value, record.topic))
                except MalformedEvent as exc:
                    dead_letters.append((record, str(exc), exc.kind))
        return _Batch(
            generation=self._generation,
            rows=rows,
            dead_letters=dead_letters,
            first={tp: records[0].offset for tp, records in polled.items()},
            next_offsets={tp: records[-1].offset + 1 for tp, records in polled.items()},
        )

    def _write(self, batch: _Batch) -> None:
        """Writer thread: one store transaction, then the dead letters, flushed (``acks=all``)."""
        try:
            batch.inserted = self.store.insert_rows(batch.rows, source="kafka")
            for record, reason, kind in batch.dead_letters:
                self._dlq.publish(
                    self.config.dlq_topic,
                    dead_letter(record, reason, kind),
                    key=record.key,
                    headers=[("dlq.reason", reason.encode()[:1024]), ("dlq.kind", kind.encode())],
                )
            self._dlq.flush(timeout_s=self.config.commit_timeout_ms / 1000)
        except Exception as exc:
            batch.error = exc

    def _writer_loop(self) -> None:
        failed_generation = -1
        while True:
            batch = self._todo.get()
            if batch is None:
                return
            # Skip batches dropped by a rewind, and the ones queued behind a failed write: the consumer rewinds
            # to the failed batch and polls them again, so writing them now would dead-letter their records twice.
            if batch.generation == self._generation and batch.generation != failed_generation:
                self._write(batch)
                if batch.error is not None:
                    failed_generation = batch.generation
            self._done.put(batch)

    def _complete(self, batch: _Batch) -> None:
        """Consumer thread, in poll order: commit a written batch, or rewind everything from a failed one."""
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        if batch.error is not None:
            n = len(batch.rows) + len(batch.dead_letters)
            logger.error(
                "batch of %d records could not be stored / dead-lettered (%r); rewinding to retry it",
                n,
                batch.error,
            )
            self._rewind([batch, *self._in_flight])
            self.metrics.retried_batches += 1
            time.sleep(1.0)
            return
        dead = len(batch.dead_letters)
        for _, _, kind in batch.dead_letters:
            self.metrics.dlq_reasons[kind] = self.metrics.dlq_reasons.get(kind, 0) + 1
        self.metrics.events += len(batch.rows) + dead
        self.metrics.stored += batch.inserted
        self.metrics.duplicates += len(batch.rows) - batch.inserted
        self.metrics.dlq += dead
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in batch.next_offsets.items()}
        try:
            self._consumer.commit(offsets, timeout_ms=self.config.commit_timeout_ms)
        except KafkaError as exc:
            # The data is stored; the records come back after a restart or rebalance and are skipped then.
            self.metrics.commit_failures += 1
            logger.warning("offset commit failed (%s); the batch may be redelivered and deduplicated", exc)
        self.metrics.batches += 1
        if self.on_batch is not None:
            self.on_batch(self.metrics)

    def _collect(self, block: bool) -> None:
        """Complete the written batches at the head of the in-flight queue (all of them when ``block``)."""
        while self._in_flight:
            try:
                batch = self._done.get(timeout=0.5) if block else self._done.get_nowait()
            except queue.Empty:
                if not block:
                    return
                if not self._writer.is_alive():
                    raise RuntimeError("the ingest writer thread died; see the log") from None
                continue
            if batch.generation != self._generation:
                continue  # polled after a failed batch; superseded by the rewind
            head = self._in_flight.popleft()
            assert head is batch, "writer results out of order"
            self._complete(batch)

    def _submit(self, batch: _Batch) -> None:
        self._in_flight.append(batch)
        while True:
            try:
                self._todo.put(batch, timeout=0.5)
                return
            except queue.Full:
                # The writer is behind: finish what it has done (commits) while waiting for room.
                self._collect(block=False)
                if batch.generation != self._generation:
                    return  # a rewind dropped this batch while we waited

    def _rewind(self, batches: list[_Batch]) -> None:
        """Seek every partition back to its first offset in ``batches``; later results are ignored."""
        first: dict[Any, int] = {}
        for batch in batches:
            for tp, offset in batch.first.items():
                first[tp] = min(offset, first.get(tp, offset))
        self._in_flight.clear()
        self._generation += 1
        for tp, offset in first.items():
            try:
                self._consumer.seek(tp, offset)
            except (
                Exception
            ) as exc:  # revoked by a rebalance: its new owner resumes from the committed offset
                logger.warning("could not rewind %s: %s", tp, exc)

    def _rejoin_if_stranded(self) -> None:
        """Work around a kafka-python 3.0 bug that leaves the consumer without partitions forever.

        A rebalance that the group leader starts because the subscribed topics' metadata changed (e.g. the
        topics appeared after the group was joined) is lost when its JoinGroup/SyncGroup round trips outlast
        the poll() that started it: the assignment resets the leader's metadata snapshot, so need_rejoin() turns
        False while the join is in flight, and no later poll() ever applies its result. The coordinator then
        stays REBALANCING, with heartbeats off and nothing assigned. Asking it to rejoin makes the next poll()
        await the join and apply the assignment.
        """
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None or not coordinator.rebalance_in_progress():
            return
        if not coordinator.need_rejoin():
            logger.warning(
                "consumer group %s: rebalance lost without an assignment (kafka-python); rejoining",
                self.config.group_id,
            )
            coordinator.request_rejoin()

    # -- metrics --------------------------------------------------------------------------------------
    def _partition_lags(self) -> dict[Any, int | None]:
        """Records behind the high watermark per assigned partition; None where that is unknown: no fetch
        response since the partition was (re)assigned, or its position is being reset."""
        lags: dict[Any, int | None] = {}
        for tp in self._consumer.assignment():
            try:
                high = self._consumer.highwater(tp)
                position = None if high is None else self._consumer.position(tp, timeout_ms=1000)
            except Exception:  # revoked since assignment(), or its position is being reset
                high = position = None
            lags[tp] = None if high is None or position is None else max(0, high - position)
        return lags

    def _update_lag(self) -> None:
        lags = self._partition_lags()
        self.metrics.lag = sum(lag for lag in lags.values() if lag is not None) if lags else None

    def snapshot(self) -> IngestMetrics:
        """Refresh the derived metrics (elapsed, events/s, lag) and return them."""
        m = self.metrics
        m.elapsed_s = time.monotonic() - self._started
        m.events_per_s = m.events / m.elapsed_s if m.elapsed_s > 0 else 0.0
        self._update_lag()
        return m

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_metrics < self.config.metrics_interval_s:
            return
        self._last_metrics = now
        m = self.snapshot()
        logger.info(
            "ingest: %d events (%.0f/s), stored %d, duplicates %d, dlq %d, lag %s, commit failures %d",
            m.events,
            m.events_per_s,
            m.stored,
            m.duplicates,
            m.dlq,
            m.lag,
            m.commit_failures,
        )
        if self.config.metrics_path:
            path = Path(self.config.metrics_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(json.dumps({"time": time.time(), **m.to_dict()}) + "\n")

    # -- main loop ------------------------------------------------------------------------------------
    def run(self) -> IngestMetrics:
        """Ingest until stopped, idle for ``idle_timeout_s``, ``max_events`` or ``max_seconds``; then close."""
        c = self.config
        self._started = time.monotonic()
        try:
            self.ingest_for(c.max_events, c.max_seconds, c.idle_timeout_s)
        finally:
            self._report(force=True)
            self.close()
        return self.metrics

    def ingest_for(
        self,
        max_events: int | None = None,
        max_seconds: float | None = None,
        idle_timeout_s: float | None = None,
    ) -> int:
        """Ingest until stopped or a limit is hit, keeping the consumer open (the continuous loop calls this
        once per iteration); returns the number of records consumed in this call."""
        start = time.monotonic()
        last_data = start
        before = self.metrics.events
        try:
            while not self._stop:
                self._collect(block=False)
                polled = self._poll_batch()
                now = time.monotonic()
                if polled:
                    self._submit(self._prepare(polled))
                    last_data = now
                elif self._in_flight or not self._consumer.assignment():
                    # Not idle: batches still being written, or joining the group (e.g. until a killed
                    # member's session expires).
                    last_data = now
                    if not self._in_flight:
                        self._rejoin_if_stranded()
                elif idle_timeout_s is not None and now - last_data >= idle_timeout_s:
                    # Idle only when caught up: after a rebalance, or a stall of this process or the broker
                    # longer than the timeout, records may be waiting that no poll has fetched yet.
                    lags = self._partition_lags()
                    if lags and all(lag == 0 for lag in lags.values()):
                        logger.info("ingest: idle for %.1fs, stopping", now - last_data)
                        break
                    behind = {f"{tp.topic}-{tp.partition}": lag for tp, lag in lags.items() if lag != 0}
                    logger.info(
                        "ingest: no records for %.1fs but not caught up (lag, None = not fetched yet: %s); waiting",
                        now - last_data,
                        behind,
                    )
                    last_data = now
                if max_events is not None and self.metrics.events - before >= max_events:
                    break
                if max_seconds is not None and now - start >= max_seconds:
                    break
                self._report()
        finally:
            # Whatever was polled is written and committed (or rewound) before returning: on SIGTERM this is
            # the drain.
            self._collect(block=True)
        return self.metrics.events - before

    def close(self) -> None:
        """Close the consumer (no auto-commit) and the DLQ producer; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._todo.put(None)
        self._writer.join(timeout=60)
        try:
            self._consumer.close(autocommit=False)
        except Exception:
            logger.exception("closing the Kafka consumer failed")
        if self._owns_bus:
            try:
                self._dlq.close()
            except Exception:
                logger.exception("closing the dead-letter producer failed")
