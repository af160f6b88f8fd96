"""Size a worker pool (the EnvRunner actors) with the adaptive controller.

The trainer calls :meth:`PoolSizer.update` once per iteration with two signals it already measures:

* ``learner_wait_frac``: the fraction of the iteration the learners spent waiting for rollouts. Above
  ``starve_threshold`` the pool is *utilized* (every runner is busy and still too slow), so the controller may
  grow it by ``increase_step``.
* ``rollout_queue``: rollout batches produced but not yet consumed. Above ``queue_high_watermark`` the runners
  outpace the learners (congestion), so the controller shrinks the pool by ``decrease_step``.

Anything in between holds the size (an app-limited window). Runner failures can be reported as ``errors``
(out of ``num_runners`` requests) so that a crashing pool backs off instead of growing.

>>> sizer = PoolSizer(LimiterConfig(mode="aimd", base_limit=2, max_limit=8, adaptation_interval=0))
>>> sizer.update(current=2, learner_wait_frac=0.6, rollout_queue=0, now=0.0)
3
"""

from __future__ import annotations

from dspy_rl.control.limiter import AdaptiveLimiter, LimiterConfig, Sample


class PoolSizer:
    """Maps rollout-wait / queue signals to a target runner count, via :class:`AdaptiveLimiter`."""

    def __init__(self, cfg: LimiterConfig | None = None, starve_threshold: float = 0.1) -> None:
        if not 0 <= starve_threshold < 1:
            raise ValueError(f"starve_threshold={starve_threshold!r}: expected a fraction in [0, 1)")
        self.controller = AdaptiveLimiter(cfg or LimiterConfig(mode="aimd"))
        self.starve_threshold = starve_threshold

    @property
    def target(self) -> int:
        """The current target number of runners."""
        return self.controller.limit

    def update(
        self,
        current: int,
        learner_wait_frac: float,
        rollout_queue: float,
        errors: int = 0,
        now: float | None = None,
    ) -> int:
        """Feed one iteration's signals; returns the target runner count (clamped to [min_limit, max_limit]).

        ``current`` is how many runners exist now: the controller starts from it, so a runner that died or was
        added by hand is respected rather than fought.
        """
        if current < 0:
            raise ValueError(f"current={current!r}: expected the number of live runners (>= 0)")
        if not 0 <= learner_wait_frac <= 1:
            raise ValueError(f"learner_wait_frac={learner_wait_frac!r}: expected a fraction in [0, 1]")
        if current != self.controller.limit:
            self.controller.set_limit(current)
        starved = learner_wait_frac > self.starve_threshold
        return self.controller.update(
            Sample(
                latency_s=None,
                in_flight=float(max(current, 1)) if starved else 0.0,
                queued=rollout_queue,
                requests=max(current, errors),
                errors=errors,
                now=now,
            )
        )


def target_runner_count(
    sizer: PoolSizer, current: int, learner_wait_frac: float, rollout_queue: float, now: float | None = None
) -> int:
    """Functional form of :meth:`PoolSizer.update` for call sites that keep the sizer elsewhere."""
    return sizer.update(current, learner_wait_frac, rollout_queue, now=now)
