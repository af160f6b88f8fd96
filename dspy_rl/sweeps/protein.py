"""Protein-style cost-aware searcher (after PufferLib's Protein; our own implementation).

Each model-based suggestion:

1. **Candidates** -- Gaussian perturbations (three scales) of the score/cost Pareto-front points and of the best few
   observations, plus uniform points over the whole cube (global exploration).
2. **Surrogates** -- GP posterior of the score (mean, std) and GP mean of log-cost at every candidate; running trials
   are already in the GPs as fantasies (see :mod:`.searcher`).
3. **Cost target** -- a target log-cost cycles deterministically through the observed log-cost range, extended by
   ``expansion`` beyond the most expensive observation, so that successive suggestions alternate between cheap and
   expensive regions instead of all piling up at the most expensive (usually best-scoring) end.
4. **Acquisition** -- ``UCB(x)`` rescaled to [0, 1] over the candidates, times a Gaussian weight of the distance between
   the predicted log-cost and the target, times the predicted success probability; candidates predicted over
   ``max_suggestion_cost`` are excluded.

With a declared ``fidelity`` parameter (multi-fidelity mode: the warm-up ran at its cheapest value) steps 3-4
become: every candidate is placed at the top budget and scored by the rescaled UCB there (what the final,
full-budget result of that configuration may be; the score GP spans the fidelity dimension, so what cheaper
trials showed carries over), times the predicted success probability. The base class then lowers the winner's
budget to the cheapest level the model is still uncertain about (:mod:`.fidelity`), so the budget climbs only as
far as the model needs to learn what more budget buys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dspy_rl.sweeps.pareto import pareto_front
from dspy_rl.sweeps.searcher import CostAwareSearcher, ModelContext


class ProteinSearcher(CostAwareSearcher):
    """Global + Pareto-local candidates, UCB weighted by closeness to a cycling cost target.

    Args (beyond :class:`CostAwareSearcher`'s):
        ucb_beta: exploration weight of the score std in ``mean + beta * std``.
        expansion: how far beyond the most expensive observation (fraction of the log-cost range) targets reach.
        cost_cycle: number of suggestions in one cheap-to-expensive target cycle.
        cost_bandwidth: width of the cost-closeness weight, as a fraction of the observed log-cost range.
        global_fraction: share of candidates drawn uniformly over the whole cube.
        local_scales: std devs (unit cube) of the perturbations around Pareto / best points.
    """

    name = "protein"

    def __init__(
        self,
        *args: Any,
        ucb_beta: float = 1.5,
        expansion: float = 0.25,
        cost_cycle: int = 5,
        cost_bandwidth: float = 0.35,
        global_fraction: float = 0.25,
        local_scales: tuple[float, ...] = (0.03, 0.1, 0.25),
        num_best: int = 3,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        if ucb_beta < 0 or expansion < 0 or cost_cycle < 1 or cost_bandwidth <= 0:
            raise ValueError("need ucb_beta >= 0, expansion >= 0, cost_cycle >= 1, cost_bandwidth > 0")
        if not 0 <= global_fraction <= 1 or not local_scales or min(local_scales) <= 0:
            raise ValueError("need 0 <= global_fraction <= 1 and positive local_scales")
        self.ucb_beta = float(ucb_beta)
        self.expansion = float(expansion)
        self.cost_cycle = int(cost_cycle)
        self.cost_bandwidth = float(cost_bandwidth)
        self.global_fraction = float(global_fraction)
        self.local_scales = tuple(float(s) for s in local_scales)
        self.num_best = int(num_best)

    def cost_target(self, log_cost: np.ndarray, step: int) -> float:
        """The target log-cost of model step ``step``: cycles from the cheapest to beyond the dearest observation."""
        lo, hi = float(log_cost.min()), float(log_cost.max())
        frac = (
            np.linspace(0.0, 1.0 + self.expansion, self.cost_cycle)[step % self.cost_cycle]
            if self.cost_cycle > 1
            else 1.0
        )
        return lo + float(frac) * (hi - lo)

    def _candidates(self, ctx: ModelContext) -> np.ndarray:
        n, d = self.num_candidates, ctx.x.shape[1]
        front = pareto_front(ctx.y, ctx.log_cost)
        best = np.argsort(-ctx.y)[: self.num_best]
        centers = ctx.x[np.unique(np.concatenate([front, best]))]
        n_global = int(round(n * self.global_fraction))
        n_local = n - n_global
        idx = ctx.rng.integers(0, len(centers), n_local)
        scale = ctx.rng.choice(np.array(self.local_scales), size=(n_local, 1))
        local = centers[idx] + scale * ctx.rng.standard_normal((n_local, d))
        uniform = ctx.rng.random((n_global, d))
        return self._snap_all(np.concatenate([local, uniform]))

    def _propose(self, ctx: ModelContext) -> np.ndarray:
        cands = self._candidates(ctx)
        if self.fidelity is not None:  # every candidate at the top budget (the base class may lower it)
            cands[:, self.fidelity_index] = self.fidelity_levels()[-1]
        mu, sd, lc = self._predict(ctx, cands)
        ucb = mu + self.ucb_beta * sd
        span = ucb.max() - ucb.min()
        u = (ucb - ucb.min()) / span if span > 1e-12 else np.ones_like(ucb)
        factor = self._penalties(ctx, cands, lc)
        if self.fidelity is not None:
            return self._pick(cands, (u + 1e-6) * factor, factor, lc)
        target = self.cost_target(ctx.log_cost, ctx.step)
        width = self.cost_bandwidth * max(float(np.ptp(ctx.log_cost)), 1e-3)
        closeness = np.exp(-0.5 * ((lc - target) / width) ** 2)
        # 1e-3 keeps a total order among candidates far from the target (closeness underflows to 0 there).
        acq = (u + 1e-6) * (closeness + 1e-3) * factor
        ctx.extra.update(target_log_cost=target)
        return self._pick(cands, acq, factor, lc)
