"""The no-broker source: span events from a JSONL file (one wire-format event a line) into the trace store.

It follows the same path as the Kafka ingester: :func:`~dspy_rl.traces.spans.decode_event_row` validates each
line, valid rows go to the store in batched transactions (idempotent on event id, so re-reading a file is
harmless), malformed lines go to the dead-letter topic of the given bus with the reason and line number.
``ingest(max_events)`` continues where the previous call stopped, so the continuous loop can take the file a
slice per iteration. Without a path, the embedded sample (``dspy_rl/stream/data/sample_events.jsonl``) is used.
"""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path

from dspy_rl.stream.bus import EventBus
from dspy_rl.stream.ingest import IngestMetrics
from dspy_rl.traces.spans import TOPIC_DLQ, MalformedEvent, decode_event_row
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)

SAMPLE_EVENTS = Path(__file__).resolve().parent / "data" / "sample_events.jsonl"


class JsonlSource:
    """Reads span events from ``path`` (default: the embedded sample) into ``store`` (see module docstring)."""

    def __init__(
        self,
        store: TraceStore,
        path: str | Path | None = None,
        *,
        dlq: EventBus | None = None,
        batch_size: int = 5000,
    ) -> None:
        self.path = Path(path) if path else SAMPLE_EVENTS
        if not self.path.is_file():
            raise FileNotFoundError(
                f"events file {str(self.path)!r} does not exist; pass a JSONL file of span events "
                "(stream.events_file=...) or leave it unset for the embedded sample"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.store = store
        self.dlq = dlq
        self.batch_size = batch_size
        self.metrics = IngestMetrics()
        self.line = 0  # lines consumed so far
        self._at_end = False
        self._handle = self.path.open("rb")
        self._started = time.monotonic()

    @property
    def exhausted(self) -> bool:
        """True when the last call reached the end of the file (new lines appended later are still read)."""
        return self._at_end

    def ingest(self, max_events: int | None = None) -> int:
        """Read up to ``max_events`` more lines (all remaining when None); returns how many were read."""
        read = 0
        rows: list[tuple] = []
        dead = 0
        self._at_end = False
        while max_events is None or read < max_events:
            raw = self._handle.readline()
            if not raw:
                self._at_end = True
                break
            if not raw.endswith(b"\n"):  # a line still being written: read it next time
                self._handle.seek(-len(raw), 1)
                self._at_end = True
                break
            self.line += 1
            if not raw.strip():
                continue
            read += 1
            try:
                rows.append(decode_event_row(raw.rstrip(b"\r\n"), None))
            except MalformedEvent as exc:
                dead += 1
                self._dead_letter(raw, str(exc), exc.kind)
            if len(rows) >= self.batch_size:
                self._write(rows)
                rows = []
        self._write(rows)
        if self.dlq is not None:
            self.dlq.flush()
        self.metrics.events += read
        self.metrics.dlq += dead
        self.metrics.elapsed_s = time.monotonic() - self._started
        self.metrics.events_per_s = self.metrics.events / max(self.metrics.elapsed_s, 1e-9)
        return read

    def _write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        inserted = self.store.insert_rows(rows, source=f"file:{self.path.name}")
        self.metrics.stored += inserted
        self.metrics.duplicates += len(rows) - inserted
        self.metrics.batches += 1

    def _dead_letter(self, raw: bytes, reason: str, kind: str) -> None:
        self.metrics.dlq_reasons[kind] = self.metrics.dlq_reasons.get(kind, 0) + 1
        logger.warning("%s:%d: malformed event (%s)", self.path, self.line, reason)
        if self.dlq is not None:
            self.dlq.publish(
                TOPIC_DLQ,
                {
                    "reason": reason,
                    "kind": kind,
                    "file": str(self.path),
                    "line": self.line,
                    "payload_b64": base64.b64encode(raw).decode(),
                    "failed_at": time.time(),
                },
            )

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
