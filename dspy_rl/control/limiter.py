"""Adaptive concurrency limit: the one controller core behind every limiter in dspy-rl.

The controller keeps an integer *limit* (how much concurrent work the downstream should get) between
``min_limit`` and ``max_limit`` and moves it once per ``adaptation_interval`` from the samples seen in that
window, in the style of Netflix concurrency-limits:

* **congestion** in the window (error rate above ``error_rate_high``, queue depth above
  ``queue_high_watermark``, accelerator wait above ``gpu_wait_high``) always backs off multiplicatively:
  ``limit * (1 - decrease_step)``, floored.
* otherwise the mode decides:

  - ``aimd``: latency above ``latency_tolerance x`` the no-load latency is congestion too (same backoff);
    a healthy, *utilized* window (peak in-flight at least half the limit) grows the limit additively by
    ``increase_step``; an app-limited window (little in flight) leaves it alone, so an idle service does not
    ratchet its limit up to ``max_limit``.
  - ``gradient`` (Envoy / Netflix Gradient): ``gradient = clamp(latency_tolerance * rtt_noload / rtt, 0.5, 1)``
    and ``new = limit * gradient + increase_step`` (the queue allowance), smoothed with
    ``smoothing``; growth is capped the same way for app-limited windows. Windows without a latency
    (nothing completed, or a signal that has none, like pool sizing) probe additively like AIMD.

``rtt_noload`` is the lowest window latency seen, slowly forgotten (``noload_decay`` per window) so the
controller can adapt when the service itself gets slower or faster.

The same object sizes three things: a Serve deployment's per-replica concurrency (see
:mod:`dspy_rl.control.serve_policy`), the EnvRunner pool (:func:`dspy_rl.control.pool.target_runner_count`),
and semaphores around judge calls and tool executions (:mod:`dspy_rl.control.concurrency`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

MODES = ("aimd", "gradient")


class LimiterConfigError(ValueError):
    """An :class:`LimiterConfig` value is out of range."""


@dataclass
class LimiterConfig:
    """Settings of :class:`AdaptiveLimiter` (also the ``control`` block of conf/serve.yaml)."""

    mode: str = "gradient"
    """``aimd`` (additive increase, multiplicative decrease) or ``gradient`` (latency-gradient)."""
    base_limit: int = 4
    """Initial limit."""
    min_limit: int = 1
    """Lowest limit the controller may reach."""
    max_limit: int = 64
    """Highest limit the controller may reach."""
    increase_step: float = 1.0
    """AIMD: additive increase per healthy window. Gradient: queue allowance added each window."""
    decrease_step: float = 0.25
    """Fraction of the limit removed on congestion: ``limit * (1 - decrease_step)``; in (0, 1)."""
    queue_high_watermark: float = 8.0
    """Queued requests (per controlled unit) above which the window counts as congested."""
    gpu_wait_high: float = 0.5
    """Fraction of time spent waiting for the accelerator above which the window counts as congested."""
    error_rate_high: float = 0.05
    """Error rate (errors / requests) above which the window counts as congested."""
    adaptation_interval: float = 1.0
    """Seconds between limit updates; samples arriving in between are aggregated. 0 updates on every sample."""
    latency_tolerance: float = 2.0
    """AIMD: latency above this multiple of the no-load latency is congestion. Gradient: the tolerance factor."""
    smoothing: float = 0.5
    """Gradient: weight of the new estimate when smoothing the limit (1 = no smoothing)."""
    noload_decay: float = 0.01
    """Per window, the no-load latency estimate moves this fraction toward the current latency."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`LimiterConfigError` naming the first bad field."""

        def need(ok: bool, key: str, allowed: str) -> None:
            if not ok:
                raise LimiterConfigError(
                    f"control.{key}={getattr(self, key)!r} is not allowed; expected {allowed}"
                )

        need(self.mode in MODES, "mode", f"one of {MODES}")
        need(self.min_limit >= 1, "min_limit", "an int >= 1")
        need(self.max_limit >= self.min_limit, "max_limit", f"an int >= min_limit ({self.min_limit})")
        need(
            self.min_limit <= self.base_limit <= self.max_limit,
            "base_limit",
            "min_limit <= base_limit <= max_limit",
        )
        need(self.increase_step > 0, "increase_step", "a number > 0")
        need(0 < self.decrease_step < 1, "decrease_step", "a fraction in (0, 1)")
        need(self.queue_high_watermark >= 0, "queue_high_watermark", "a number >= 0")
        need(self.gpu_wait_high > 0, "gpu_wait_high", "a fraction > 0")
        need(0 < self.error_rate_high <= 1, "error_rate_high", "a fraction in (0, 1]")
        need(self.adaptation_interval >= 0, "adaptation_interval", "seconds >= 0")
        need(self.latency_tolerance >= 1, "latency_tolerance", "a number >= 1")
        need(0 < self.smoothing <= 1, "smoothing", "a fraction in (0, 1]")
        need(0 <= self.noload_decay < 1, "noload_decay", "a fraction in [0, 1)")


@dataclass(frozen=True)
class Sample:
    """One observation of the controlled system.

    ``latency_s`` is the mean latency of the ``requests`` that completed since the previous sample (None when
    nothing completed); ``in_flight`` and ``queued`` are gauges at sample time; ``gpu_wait`` is the fraction of
    time spent waiting on the accelerator. ``now`` defaults to ``time.monotonic()``.
    """

    latency_s: float | None = None
    in_flight: float = 0.0
    queued: float = 0.0
    requests: int = 0
    errors: int = 0
    gpu_wait: float = 0.0
    now: float | None = None

    def __post_init__(self) -> None:
        if self.latency_s is not None and not (self.latency_s >= 0 and math.isfinite(self.latency_s)):
            raise ValueError(f"Sample.latency_s={self.latency_s!r}: expected a finite number >= 0 or None")
        for name in ("in_flight", "queued", "requests", "errors", "gpu_wait"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"Sample.{name}={value!r}: expected a finite number >= 0")
        if self.errors > self.requests:
            raise ValueError(
                f"Sample.errors={self.errors} > requests={self.requests}: errors are a subset of requests"
            )


@dataclass
class _Window:
    """Aggregate of the samples since the last update."""

    started: float
    latency_sum: float = 0.0
    latency_weight: int = 0
    requests: int = 0
    errors: int = 0
    peak_in_flight: float = 0.0
    peak_queued: float = 0.0
    gpu_wait_sum: float = 0.0
    samples: int = 0

    def add(self, s: Sample) -> None:
        if s.latency_s is not None:
            weight = max(1, s.requests)
            self.latency_sum += s.latency_s * weight
            self.latency_weight += weight
        self.requests += s.requests
        self.errors += s.errors
        self.peak_in_flight = max(self.peak_in_flight, s.in_flight)
        self.peak_queued = max(self.peak_queued, s.queued)
        self.gpu_wait_sum += s.gpu_wait
        self.samples += 1

    @property
    def latency(self) -> float | None:
        return self.latency_sum / self.latency_weight if self.latency_weight else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def gpu_wait(self) -> float:
        return self.gpu_wait_sum / self.samples if self.samples else 0.0


@dataclass
class Decision:
    """Why the last update moved the limit (for logs, metrics and tests)."""

    limit: int
    reason: str
    latency_s: float | None = None
    rtt_noload_s: float | None = None
    error_rate: float = 0.0
    queued: float = 0.0
    in_flight: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


class AdaptiveLimiter:
    """AIMD / gradient concurrency limit. Not thread-safe: callers serialize :meth:`update`.

    >>> lim = AdaptiveLimiter(LimiterConfig(mode="aimd", base_limit=4, adaptation_interval=0))
    >>> lim.update(Sample(latency_s=0.01, in_flight=4, requests=4, now=0.0))
    5
    """

    def __init__(self, cfg: LimiterConfig | None = None) -> None:
        self.cfg = cfg or LimiterConfig()
        self.cfg.validate()
        self._limit = float(self.cfg.base_limit)
        self._rtt_noload: float | None = None
        self._window: _Window | None = None
        self.last_decision = Decision(limit=self.limit, reason="initial")

    @property
    def limit(self) -> int:
        """The current limit (an int in [min_limit, max_limit])."""
        return int(self._limit)

    @property
    def rtt_noload(self) -> float | None:
        """Estimated latency without queueing (lowest window latency, slowly forgotten)."""
        return self._rtt_noload

    def set_limit(self, limit: float) -> int:
        """Force the limit (clamped), e.g. when the controlled pool was resized from outside."""
        self._limit = self._clamp(limit)
        return self.limit

    def update(self, sample: Sample) -> int:
        """Record ``sample``; when ``adaptation_interval`` has passed since the window opened, move the limit.

        Returns the (possibly unchanged) limit.
        """
        now = time.monotonic() if sample.now is None else sample.now
        if self._window is None:
            self._window = _Window(started=now)
        self._window.add(sample)
        if now - self._window.started + 1e-9 < self.cfg.adaptation_interval:
            return self.limit
        window, self._window = self._window, None
        self._adapt(window)
        return self.limit

    def _clamp(self, value: float) -> float:
        return float(min(self.cfg.max_limit, max(self.cfg.min_limit, value)))

    def _adapt(self, w: _Window) -> None:
        cfg = self.cfg
        latency = w.latency
        if latency is not None:
            if self._rtt_noload is None or latency < self._rtt_noload:
                self._rtt_noload = latency
            else:
                self._rtt_noload += cfg.noload_decay * (latency - self._rtt_noload)
        old = self._limit
        utilized = w.peak_in_flight * 2 >= old
        reason = self._congestion(w)
        if reason is not None:
            new = old * (1.0 - cfg.decrease_step)
        elif cfg.mode == "aimd":
            if (
                latency is not None
                and self._rtt_noload
                and latency > cfg.latency_tolerance * self._rtt_noload
            ):
                reason, new = "latency", old * (1.0 - cfg.decrease_step)
            elif utilized:
                reason, new = "increase", old + cfg.increase_step
            else:
                reason, new = "app-limited", old
        else:
            if latency is None or not self._rtt_noload:
                # No latency signal (e.g. pool sizing): fall back to additive probing while utilized.
                reason, new = ("increase", old + cfg.increase_step) if utilized else ("app-limited", old)
            else:
                gradient = max(0.5, min(1.0, cfg.latency_tolerance * self._rtt_noload / latency))
                target = old * gradient + cfg.increase_step
                if target > old and not utilized:
                    reason, new = "app-limited", old
                else:
                    new = old * (1.0 - cfg.smoothing) + target * cfg.smoothing
                    reason = "gradient" if gradient < 1.0 else "increase"
        self._limit = self._clamp(new)
        self.last_decision = Decision(
            limit=self.limit,
            reason=reason,
            latency_s=latency,
            rtt_noload_s=self._rtt_noload,
            error_rate=w.error_rate,
            queued=w.peak_queued,
            in_flight=w.peak_in_flight,
        )
        if self.limit != int(old):
            logger.debug("limit %d -> %d (%s)", int(old), self.limit, reason)

    def _congestion(self, w: _Window) -> str | None:
        cfg = self.cfg
        if w.requests and w.error_rate > cfg.error_rate_high:
            return "errors"
        if w.peak_queued > cfg.queue_high_watermark:
            return "queue"
        if w.gpu_wait > cfg.gpu_wait_high:
            return "gpu-wait"
        return None
