"""A durable local spool: records are fsynced to a file before the caller returns, then delivered in the background.

The recording proxy appends each call's span events here; a writer thread drains them to the real sink (the SQLite
trace store or Kafka) in order, advancing a committed offset only after the sink accepted a batch. While the sink is
down, the spool grows and the writer retries with backoff; after a crash or restart the undelivered tail is
delivered first. Delivery is at-least-once: a batch may be re-sent after a failure or crash between the sink write
and the offset commit, which is harmless because both sinks deduplicate on the event id (span id).

Files in ``directory``: ``spool.jsonl`` (one JSON event a line) and ``spool.offset`` (bytes delivered). An
exclusive ``flock`` on ``spool.lock`` keeps two processes from sharing one spool.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dspy_rl.utils.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)


class SpoolBusy(RuntimeError):
    """Another process holds this spool directory."""


class Spool:
    """Durable append + background in-order delivery (see module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        deliver: Callable[[list[dict[str, Any]]], None],
        *,
        batch_size: int = 256,
        retry_s: float = 0.2,
        max_retry_s: float = 5.0,
        fsync: bool = True,
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.dir / "spool.lock", "w")  # noqa: SIM115 (held for the spool's life)
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise SpoolBusy(
                f"spool directory {self.dir} is in use by another process; give each a spool_dir"
            ) from exc
        self.path = self.dir / "spool.jsonl"
        self.offset_path = self.dir / "spool.offset"
        self.deliver = deliver
        self.batch_size = batch_size
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.fsync = fsync
        self._mutex = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self._repair()
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    # ----- files -----
    def _repair(self) -> None:
        """Drop a partial last line (a crash mid-append) and clamp the offset to the file."""
        if self.path.exists():
            data = self.path.read_bytes()
            end = data.rfind(b"\n") + 1
            if end != len(data):
                with open(self.path, "r+b") as f:
                    f.truncate(end)
        offset = self._offset()
        size = self.path.stat().st_size if self.path.exists() else 0
        if offset > size:
            self._set_offset(0)

    def _offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    def _set_offset(self, offset: int) -> None:
        atomic_write_bytes(self.offset_path, str(offset).encode())

    # ----- API -----
    def append(self, events: list[dict[str, Any]]) -> None:
        """Write ``events`` durably (fsync) before returning; the writer delivers them later."""
        if not events:
            return
        data = b"".join(
            json.dumps(e, separators=(",", ":"), allow_nan=False).encode() + b"\n" for e in events
        )
        with self._mutex:
            self._file.write(data)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        self._wake.set()

    def backlog(self) -> int:
        """Events written but not yet delivered."""
        with self._mutex:
            offset = self._offset()
            with open(self.path, "rb") as f:
                f.seek(offset)
                return f.read().count(b"\n")

    def wait_drained(self, timeout_s: float) -> bool:
        """Block until every appended event was delivered (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.backlog() == 0:
                return True
            self._wake.set()
            time.sleep(0.05)
        return self.backlog() == 0

    def close(self, drain_timeout_s: float = 5.0) -> None:
        """Try to deliver what is left for ``drain_timeout_s``, then stop; undelivered events stay on disk."""
        if self._closed.is_set():
            return
        if drain_timeout_s > 0:
            self.wait_drained(drain_timeout_s)
        self._closed.set()
        self._wake.set()
        self._thread.join(timeout=10)
        with self._mutex:
            self._file.close()
        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        self._lock_file.close()

    # ----- writer -----
    def _read_batch(self) -> tuple[list[dict[str, Any]], int]:
        with self._mutex:
            offset = self._offset()
            with open(self.path, "rb") as f:
                f.seek(offset)
                lines, read = [], 0
                for raw in f:
                    if not raw.endswith(b"\n") or len(lines) >= self.batch_size:
                        break
                    lines.append(raw)
                    read += len(raw)
        events = []
        for raw in lines:
            try:
                events.append(json.loads(raw))
            except ValueError:
                logger.error("spool %s: skipping an unreadable line at offset %d", self.path, offset)
        return events, offset + read

    def _compact(self) -> None:
        """When everything was delivered, start the file afresh (offset first: a crash between is a resend)."""
        with self._mutex:
            size = self._file.tell()
            if size and self._offset() == size:
                self._set_offset(0)
                self._file.truncate(0)
                self._file.seek(0)

    def _run(self) -> None:
        delay = self.retry_s
        while not self._closed.is_set():
            events, new_offset = self._read_batch()
            if not events:
                if new_offset != self._offset():
                    with self._mutex:
                        self._set_offset(new_offset)
                self._compact()
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            try:
                self.deliver(events)
            except Exception as exc:  # the sink is down: keep everything, retry with backoff
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "spool: delivery failed (%s); %d events kept, retry in %.1fs", exc, len(events), delay
                )
                self._closed.wait(delay)
                delay = min(self.max_retry_s, delay * 2)
                continue
            delay = self.retry_s
            with self._mutex:
                self._set_offset(new_offset)
            self.delivered += len(events)
            self.last_error = None
