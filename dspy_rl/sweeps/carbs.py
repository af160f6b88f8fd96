"""CARBS-style cost-aware searcher (after Imbue's CARBS; our own implementation).

Where :mod:`.protein` mixes global and local candidates and scores them by UCB near a cycling cost target, this
searcher is local and improvement-based:

1. **Trust region** -- candidates are Gaussian perturbations of radius ``search_radius`` (unit cube) around the
   Pareto-front points only; no global candidates. The radius grows by ``radius_growth`` after a model-based
   suggestion fails to extend the front, and shrinks back after one does (like a trust-region method), so a stuck
   search widens.
2. **Cost budget** -- a log-cost threshold is drawn uniformly between the cheapest observation and ``expansion``
   beyond the most expensive one; candidates predicted to cost more are excluded (a hard cap, not a weight).
3. **Acquisition** -- expected improvement of the GP score over the *Pareto front at the candidate's own predicted
   cost* (the best observed score among points at most that expensive), times the predicted success probability.
   A cheap point that matches an expensive one is an improvement; a point that merely matches the best score at a
   higher cost is not.

No multi-fidelity mode: from a cheap warm-up (the budget parameter at its minimum) the cost cap of step 2 and the
front baseline of step 3 stay at the cheapest observed cost, so this algorithm would never raise the budget; the
constructor rejects ``fidelity`` (use :mod:`.protein`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dspy_rl.sweeps.pareto import front_baseline, pareto_front
from dspy_rl.sweeps.searcher import CostAwareSearcher, ModelContext


def expected_improvement(mu: np.ndarray, sd: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """EI of a Gaussian N(mu, sd^2) over ``baseline`` (elementwise)."""
    sd = np.maximum(sd, 1e-12)
    z = (mu - baseline) / sd
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return (mu - baseline) * cdf + sd * pdf


class CarbsSearcher(CostAwareSearcher):
    """Trust region around the Pareto front, EI over the front at predicted cost, a sampled hard cost cap.

    Args (beyond :class:`CostAwareSearcher`'s):
        search_radius: initial std dev (unit cube) of perturbations around Pareto points.
        radius_growth: factor applied to the radius after a suggestion that did not extend the front.
        max_radius: upper bound of the radius.
        expansion: how far beyond the most expensive observation (fraction of the log-cost range) caps reach.
    """

    name = "carbs"

    def __init__(
        self,
        *args: Any,
        search_radius: float = 0.1,
        radius_growth: float = 1.3,
        max_radius: float = 0.5,
        expansion: float = 0.3,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if self.fidelity is not None:
            raise ValueError(
                f"CarbsSearcher does not support fidelity={self.fidelity!r}: its cost cap and Pareto baseline never "
                "reach above the most expensive observation, so from a cheap multi-fidelity warm-up it would stay at "
                "the cheapest budget; use ProteinSearcher for a fidelity sweep, or search the budget as an ordinary "
                "parameter (fidelity=None)"
            )
        if not 0 < search_radius <= max_radius or radius_growth < 1 or expansion < 0:
            raise ValueError("need 0 < search_radius <= max_radius, radius_growth >= 1, expansion >= 0")
        self.base_radius = float(search_radius)
        self.radius_growth = float(radius_growth)
        self.max_radius = float(max_radius)
        self.expansion = float(expansion)

    def _score_trend(self, y: np.ndarray, log_cost: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """CARBS models the Pareto front as a function of cost and the GP the residual: a least-squares line of
        front score on front log-cost (slope >= 0: more budget does not hurt along the front). Far outside the
        observed costs the GP reverts to the trend, so the model extrapolates "more budget helps" instead of
        reverting to the mean score."""
        front = pareto_front(y, log_cost)
        if len(front) < 2 or float(np.ptp(log_cost[front])) < 1e-9:
            level = float(np.mean(y))
            return lambda lc: np.full(np.shape(lc), level)
        slope, intercept = np.polyfit(log_cost[front], y[front], 1)
        slope = max(float(slope), 0.0)
        if slope == 0.0:
            intercept = float(np.mean(y[front]))
        return lambda lc: intercept + slope * np.asarray(lc, dtype=np.float64)

    def current_radius(self, ctx: ModelContext) -> float:
        """Trust radius from the number of model-based observations since the front last improved."""
        stale = 0
        # Count, from the newest observation backwards, how many were not on the Pareto front of all data so far.
        front = set(pareto_front(ctx.y, ctx.log_cost).tolist())
        for i in range(len(ctx.y) - 1, self.num_warmup - 1, -1):
            if i in front:
                break
            stale += 1
        return min(self.base_radius * self.radius_growth**stale, self.max_radius)

    def _propose(self, ctx: ModelContext) -> np.ndarray:
        n, d = self.num_candidates, ctx.x.shape[1]
        front = pareto_front(ctx.y, ctx.log_cost)
        radius = self.current_radius(ctx)
        centers = ctx.x[front]
        idx = ctx.rng.integers(0, len(centers), n)
        # Within the trust region, a spread of step sizes: refinement (radius / 4) up to the full radius.
        step = radius * ctx.rng.choice(np.array([0.25, 0.5, 1.0]), size=(n, 1))
        cands = self._snap_all(centers[idx] + step * ctx.rng.standard_normal((n, d)))
        mu, sd, lc = self._predict(ctx, cands)
        lo, hi = float(ctx.log_cost.min()), float(ctx.log_cost.max())
        cap = lo + ctx.rng.uniform(0.0, 1.0 + self.expansion) * (hi - lo)
        baseline = front_baseline(ctx.log_cost[front], ctx.y[front], lc, floor=float(ctx.y.min()))
        acq = expected_improvement(mu, sd, baseline)
        factor = self._penalties(ctx, cands, lc)
        within = lc <= cap
        if within.any():
            factor = np.where(within, factor, 0.0)
        ctx.extra.update(cost_cap=cap, radius=radius)
        return self._pick(cands, acq * factor, factor, lc)
