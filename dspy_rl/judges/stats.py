"""Per-replica load statistics, reported to Serve through ``record_autoscaling_stats``.

A judge replica wraps each request in :meth:`ReplicaStats.track` (in flight) and the model call in
:meth:`ReplicaStats.model_slot` (queue depth = requests waiting for a model slot). :meth:`snapshot` returns
the gauges plus latency / request / error counts over the last ``window_s`` seconds, in the metric names
that :mod:`dspy_rl.control.serve_policy` reads.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator


class ReplicaStats:
    """In-flight, queue depth and a sliding window of completed requests (asyncio, single event loop)."""

    def __init__(self, window_s: float = 2.0, model_concurrency: int = 1) -> None:
        if window_s <= 0 or model_concurrency < 1:
            raise ValueError("window_s must be > 0 and model_concurrency >= 1")
        self.window_s = window_s
        self.in_flight = 0
        self.queue_depth = 0
        self._slots = asyncio.Semaphore(model_concurrency)
        self._done: collections.deque[tuple[float, float, bool]] = collections.deque()  # (t, latency, error)
        self.total_requests = 0
        self.total_errors = 0

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """Count one request as in flight; record its latency and whether it raised."""
        start = time.monotonic()
        self.in_flight += 1
        error = False
        try:
            yield
        except BaseException:
            error = True
            raise
        finally:
            self.in_flight -= 1
            now = time.monotonic()
            self._done.append((now, now - start, error))
            self.total_requests += 1
            self.total_errors += int(error)

    @contextlib.asynccontextmanager
    async def model_slot(self) -> AsyncIterator[None]:
        """Wait for a model slot (counted in ``queue_depth`` while waiting)."""
        self.queue_depth += 1
        try:
            await self._slots.acquire()
        finally:
            self.queue_depth -= 1
        try:
            yield
        finally:
            self._slots.release()

    def snapshot(self) -> dict[str, float]:
        """Metrics for ``record_autoscaling_stats`` (all floats)."""
        cutoff = time.monotonic() - self.window_s
        while self._done and self._done[0][0] < cutoff:
            self._done.popleft()
        n = len(self._done)
        errors = sum(1 for _, _, e in self._done if e)
        latency_ms = 1000.0 * sum(lat for _, lat, _ in self._done) / n if n else 0.0
        return {
            "in_flight": float(self.in_flight),
            "queue_depth": float(self.queue_depth),
            "latency_ms": latency_ms,
            "requests": float(n),
            "errors": float(errors),
            "gpu_wait": 0.0,
        }
