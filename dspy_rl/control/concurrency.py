"""A semaphore whose size is the adaptive limit: bounds in-flight judge calls and tool executions.

:class:`ConcurrencyLimiter` works from threads (``with lim.acquire(): ...``) and from asyncio
(``async with lim.acquire_async(): ...``), even both at once. Every completed call feeds a
:class:`~dspy_rl.control.limiter.Sample` (latency, in-flight, waiters, error) to the
:class:`~dspy_rl.control.limiter.AdaptiveLimiter`, so the number of permits follows the downstream's
measured capacity. Waiters are served first-come first-served; a call can also refuse to wait
(:meth:`ConcurrencyLimiter.try_acquire`, for load shedding) or wait at most ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from dspy_rl.control.limiter import AdaptiveLimiter, LimiterConfig, Sample


class LimitExceeded(RuntimeError):
    """No permit was free within the allowed wait (or at all, for non-blocking acquires)."""


@dataclass
class LimiterStats:
    """Counters of one :class:`ConcurrencyLimiter`."""

    limit: int
    in_flight: int
    waiting: int
    completed: int
    errors: int
    rejected: int


class _Waiter:
    __slots__ = ("event", "loop", "future", "granted")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop
        self.event = None if loop else threading.Event()
        self.future: asyncio.Future[None] | None = loop.create_future() if loop else None
        self.granted = False

    def wake(self) -> None:
        self.granted = True
        if self.event is not None:
            self.event.set()
        else:
            assert self.loop is not None and self.future is not None
            fut = self.future
            self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(None))


class Permit:
    """A held permit; :meth:`release` exactly once (the context managers do it for you)."""

    __slots__ = ("_owner", "_start", "_released")

    def __init__(self, owner: ConcurrencyLimiter) -> None:
        self._owner = owner
        self._start = time.monotonic()
        self._released = False

    def release(self, error: bool = False) -> None:
        """Return the permit and report the call's latency and whether it failed."""
        if self._released:
            raise RuntimeError("permit released twice")
        self._released = True
        self._owner._release(time.monotonic() - self._start, error)


class ConcurrencyLimiter:
    """Adaptive semaphore. ``ConcurrencyLimiter(LimiterConfig(mode="gradient", max_limit=32))``."""

    def __init__(self, cfg: LimiterConfig | AdaptiveLimiter | None = None) -> None:
        self.controller = cfg if isinstance(cfg, AdaptiveLimiter) else AdaptiveLimiter(cfg or LimiterConfig())
        self._lock = threading.Lock()
        self._in_flight = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()
        self._completed = 0
        self._errors = 0
        self._rejected = 0

    @property
    def limit(self) -> int:
        """Current number of permits."""
        return self.controller.limit

    def stats(self) -> LimiterStats:
        """A snapshot of the counters."""
        with self._lock:
            return LimiterStats(
                self.controller.limit,
                self._in_flight,
                len(self._waiters),
                self._completed,
                self._errors,
                self._rejected,
            )

    def try_acquire(self) -> Permit | None:
        """A permit if one is free right now (and nobody is queued ahead), else None (counted as rejected)."""
        with self._lock:
            if self._in_flight < self.controller.limit and not self._waiters:
                self._in_flight += 1
                return Permit(self)
            self._rejected += 1
            return None

    def acquire_permit(self, timeout: float | None = None) -> Permit:
        """Block the calling thread until a permit is free; :class:`LimitExceeded` after ``timeout`` s."""
        with self._lock:
            if self._in_flight < self.controller.limit and not self._waiters:
                self._in_flight += 1
                return Permit(self)
            waiter = _Waiter()
            self._waiters.append(waiter)
        assert waiter.event is not None
        if waiter.event.wait(timeout):
            return Permit(self)
        self._abandon(waiter)
        raise LimitExceeded(f"no permit within {timeout}s (limit {self.controller.limit})")

    async def acquire_permit_async(self, timeout: float | None = None) -> Permit:
        """Wait (without blocking the event loop) for a permit; :class:`LimitExceeded` after ``timeout`` s."""
        with self._lock:
            if self._in_flight < self.controller.limit and not self._waiters:
                self._in_flight += 1
                return Permit(self)
            waiter = _Waiter(asyncio.get_running_loop())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
        except asyncio.TimeoutError as exc:
            self._abandon(waiter)
            raise LimitExceeded(f"no permit within {timeout}s (limit {self.controller.limit})") from exc
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise
        return Permit(self)

    def _abandon(self, waiter: _Waiter) -> None:
        with self._lock:
            if waiter.granted:
                # Granted between the timeout and taking the lock: hand the permit on instead of leaking it.
                self._in_flight -= 1
                self._wake_locked()
            else:
                self._waiters.remove(waiter)
            self._rejected += 1

    @contextlib.contextmanager
    def acquire(self, timeout: float | None = None) -> Iterator[Permit]:
        """``with lim.acquire(): call()`` — an exception inside counts as an error for the controller."""
        permit = self.acquire_permit(timeout)
        try:
            yield permit
        except BaseException:
            permit.release(error=True)
            raise
        permit.release()

    @contextlib.asynccontextmanager
    async def acquire_async(self, timeout: float | None = None) -> AsyncIterator[Permit]:
        """``async with lim.acquire_async(): await call()``; timeouts raise :class:`LimitExceeded`."""
        permit = await self.acquire_permit_async(timeout)
        try:
            yield permit
        except BaseException:
            permit.release(error=True)
            raise
        permit.release()

    def _release(self, latency: float, error: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            self._completed += 1
            self._errors += int(error)
            self.controller.update(
                Sample(
                    latency_s=latency,
                    in_flight=self._in_flight + 1,
                    queued=len(self._waiters),
                    requests=1,
                    errors=int(error),
                )
            )
            self._wake_locked()

    def _wake_locked(self) -> None:
        while self._waiters and self._in_flight < self.controller.limit:
            self._in_flight += 1
            self._waiters.popleft().wake()
