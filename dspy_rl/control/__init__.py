"""Adaptive concurrency control: one controller core (:mod:`.limiter`) used as a Serve autoscaling policy
(:mod:`.serve_policy`), an EnvRunner pool sizer (:mod:`.pool`) and an adaptive semaphore (:mod:`.concurrency`)."""

from dspy_rl.control.concurrency import ConcurrencyLimiter, LimiterStats, LimitExceeded, Permit
from dspy_rl.control.limiter import AdaptiveLimiter, Decision, LimiterConfig, LimiterConfigError, Sample
from dspy_rl.control.pool import PoolSizer, target_runner_count

__all__ = [
    "AdaptiveLimiter",
    "ConcurrencyLimiter",
    "Decision",
    "LimitExceeded",
    "LimiterConfig",
    "LimiterConfigError",
    "LimiterStats",
    "Permit",
    "PoolSizer",
    "Sample",
    "target_runner_count",
]
