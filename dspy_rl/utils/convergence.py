"""Convergence detection: a plateau test on a rolling window of a training metric.

After every iteration the trainer feeds the metric (the rolling success rate for env training, the mean reward
for text GRPO). Once ``2 * window`` values have been seen (and ``min_env_steps`` passed), the run has converged
when the mean of the last ``window`` values improves on the mean of the ``window`` before by less than
``min_delta`` (``mode=max``; for ``mode=min`` a decrease), and the last window's values stay within
``max_spread`` of each other. The run then ends with status ``converged`` and the reason, e.g.
``success_rate plateaued at 0.981 (last 20 iterations 0.981 vs 0.979 before: gain 0.002 < 0.005)``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dspy_rl.config import require


@dataclass
class ConvergenceConfig:
    enabled: bool = False
    """End the run early when the metric plateaus (status ``converged``)."""
    metric: str = "success_rate"
    """Metric tested (a key of the per-iteration metrics)."""
    mode: str = "max"
    """``max``: the metric should rise; ``min``: fall."""
    window: int = 20
    """Iterations per window; the test compares the last window with the one before."""
    min_delta: float = 0.005
    """Smallest improvement between the two windows that counts as progress."""
    max_spread: float = 0.05
    """Largest max - min of the last window that counts as flat."""
    min_env_steps: int = 0
    """Never converge before this many env steps (iterations for text GRPO)."""

    def __post_init__(self) -> None:
        require(self.mode in ("max", "min"), "convergence.mode", self.mode, "'max' or 'min'")
        require(self.window >= 2, "convergence.window", self.window, "an integer >= 2")
        require(self.min_delta >= 0, "convergence.min_delta", self.min_delta, "a float >= 0")
        require(self.max_spread >= 0, "convergence.max_spread", self.max_spread, "a float >= 0")
        require(self.min_env_steps >= 0, "convergence.min_env_steps", self.min_env_steps, "an integer >= 0")


class PlateauDetector:
    """Feed one value per iteration; :meth:`update` returns the reason once the metric has plateaued."""

    def __init__(self, cfg: ConvergenceConfig) -> None:
        self.cfg = cfg
        self.values: deque[float] = deque(maxlen=2 * cfg.window)

    def update(self, value: float, step: int) -> str | None:
        if not np.isfinite(value):
            return None
        self.values.append(float(value))
        cfg = self.cfg
        if len(self.values) < 2 * cfg.window or step < cfg.min_env_steps:
            return None
        vals = np.array(self.values)
        before, last = vals[: cfg.window], vals[cfg.window :]
        gain = last.mean() - before.mean()
        if cfg.mode == "min":
            gain = -gain
        spread = last.max() - last.min()
        if gain < cfg.min_delta and spread <= cfg.max_spread:
            return (
                f"{cfg.metric} plateaued at {last.mean():.3f} (last {cfg.window} iterations {last.mean():.3f} vs "
                f"{before.mean():.3f} before: gain {gain:.3f} < {cfg.min_delta}, spread {spread:.3f})"
            )
        return None

    def state_dict(self) -> dict[str, list[float]]:
        return {"values": list(self.values)}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self.values.clear()
        self.values.extend(state["values"])
