"""Stop the local Ray session a command started, leaving no process behind, and turn SIGTERM into a clean stop.

``ray.shutdown()`` stops the raylet and the GCS, but the agents the raylet spawned (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) can outlive it, reparented to init. :func:`shutdown_ray` remembers this process's
descendants before shutting down, waits for them to exit and kills the ones that do not: only processes this
command started, never those of a cluster it connected to.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any

import psutil

log = logging.getLogger(__name__)


def shutdown_ray(grace_s: float = 10.0) -> list[int]:
    """``ray.shutdown()``, then end every process this one started for it; returns the pids that had to be killed."""
    import ray

    me = psutil.Process()
    before = me.children(recursive=True)
    if ray.is_initialized():
        ray.shutdown()
    # Children that appeared during shutdown count too (a raylet restarting an agent).
    procs = {p.pid: p for p in [*before, *me.children(recursive=True)]}
    _, alive = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(alive, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    killed = [p.pid for p in alive]
    if killed:
        log.warning("killed %d Ray processes that outlived ray.shutdown(): %s", len(killed), killed)
    return killed


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (so ``finally`` clauses run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
