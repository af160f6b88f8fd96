"""The machine's CPU/RAM/disk/GPU use, sampled in the background for the dashboard's charts.

Figures come from :func:`dspy_rl.system.guard.system_stats` (the capacity guard's own reader), so the system page
and the guard agree.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)


def read_stats(path: str = ".") -> dict[str, Any]:
    """One sample of the machine's use (None for what it does not have)."""
    from dspy_rl.system.guard import system_stats

    return {"t": time.time(), **system_stats(path)}


class StatsSampler:
    """Keeps the last ``history`` samples, taking one every ``interval_s`` in a daemon thread."""

    def __init__(self, interval_s: float = 2.0, history: int = 600, path: str = ".") -> None:
        self.interval_s = interval_s
        self.path = path
        self.samples: deque[dict[str, Any]] = deque(maxlen=history)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="dashboard-stats", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(read_stats(self.path))
            except Exception as exc:  # a sampler must not die on one bad read
                logger.warning("machine stats sample failed: %s", exc)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def history(self) -> list[dict[str, Any]]:
        return list(self.samples)
