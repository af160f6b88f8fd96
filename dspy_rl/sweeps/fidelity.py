"""The budget of a multi-fidelity suggestion: the cheapest budget at which the model is still uncertain.

A sweep with a declared ``fidelity`` parameter (the training budget, e.g. ``total_env_steps``) lets the searcher
choose how much to pay for each trial. The searcher's algorithm (:mod:`.protein`; :mod:`.carbs` refuses fidelity)
proposes a point ``x`` with a budget ``z``; :func:`cheapest_uncertain_level` then lowers ``z`` to the cheapest
budget level ``l`` whose score the surrogate cannot yet predict at ``x``::

    sd(x, l) > xi * prior_sd * (cost(x, l) / cost(x, z)) ** q

where ``sd`` is the score GP's posterior std (pending trials included as fantasies), ``prior_sd`` its prior std
(the std far from all data) and ``cost`` the cost GP's prediction. This is the fidelity rule of BOCA (Kandasamy et
al., ICML 2017, "Multi-fidelity Bayesian Optimisation with Continuous Approximations"; ``q = 1 / (p + 2)`` with a
``p = 1``-dimensional fidelity gives the default 1/3): a cheap trial is worth running while it can still teach the
model something about ``x``; once the model knows ``x`` at the cheap budgets, only a dearer trial can. The
threshold shrinks with the cost ratio, so a cheap level needs little uncertainty to be chosen and a level close to
``z`` in cost nearly the prior's.

One addition to BOCA: the budget never goes more than one level above the dearest budget run so far
(``ceiling``). The score GP is stationary, so its confidence about budgets beyond all data is extrapolation
(smoothness along the budget axis, not evidence); the climb is therefore successive-halving-like, one level (for a
pow2 budget: a doubling) at a time.

In a sweep that starts with cheap warm-up trials, the budget therefore climbs one level at a time for the points the
algorithm likes (warm-up at the cheapest level, the leader at the next, then the next, ...), drops back to cheap
levels for points in unexplored regions, and reaches the proposed budget ``z`` only for points already known at every
cheaper level. A configuration that is good at a small budget is found at that budget before any dearer trial runs.

The rule is only as good as the score GP's view of how budgets relate: in fidelity mode that GP's kernel has a part
shared by every budget (:mod:`.gp`), so "the model knows x at the cheap levels" also means "the model has learned
something about x at the top budget", and a region that is hopeless at the cheapest budget stops attracting trials.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: ``predict(cands) -> (score mean, score std, log-cost mean)`` at unit-cube candidates (m, d)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def cheapest_uncertain_level(
    x: np.ndarray,
    index: int,
    levels: np.ndarray,
    predict: Predictor,
    prior_sd: float,
    ceiling: float = 1.0,
    xi: float = 0.5,
    q: float = 1.0 / 3.0,
) -> float:
    """The unit-cube budget for ``x``: the cheapest level below ``x[index]`` that the model is uncertain about.

    Args:
        x: the proposed point (unit cube); ``x[index]`` is its budget, the most this rule may return.
        index: position of the fidelity parameter in ``x``.
        levels: the fidelity parameter's unit-cube levels, cheapest first.
        predict: the surrogates (see :data:`Predictor`).
        prior_sd: the score GP's prior std, in score units.
        ceiling: the dearest level allowed (unit cube), e.g. :func:`next_level_up` of the dearest budget run; the
            thresholds still scale with the cost relative to ``x[index]`` (the budget the algorithm aims at).
        xi: the threshold at equal cost, as a fraction of ``prior_sd``; larger values spend less on cheap levels.
        q: how fast the threshold shrinks with the cost ratio.

    Returns:
        The chosen level's unit-cube value: ``min(x[index], ceiling)`` if the model already knows every cheaper
        level.
    """
    if xi <= 0 or q < 0:
        raise ValueError(f"need xi > 0 and q >= 0, got xi={xi}, q={q}")
    z = float(x[index])
    capped = min(z, float(ceiling))
    cheaper = np.asarray(levels, dtype=np.float64)
    cheaper = np.sort(cheaper[cheaper < capped - 1e-12])
    if len(cheaper) == 0 or not prior_sd > 0:
        return capped
    cands = np.repeat(np.asarray(x, dtype=np.float64)[None, :], len(cheaper) + 1, axis=0)
    cands[:-1, index] = cheaper
    _, sd, log_cost = predict(cands)  # the last row is x at its proposed budget z: the cost reference
    ratio = np.exp(np.minimum(log_cost[:-1] - log_cost[-1], 0.0))  # a cheaper level never costs more than z
    uncertain = sd[:-1] > xi * prior_sd * ratio**q
    return float(cheaper[int(np.argmax(uncertain))]) if uncertain.any() else capped


def next_level_up(levels: np.ndarray, run: np.ndarray) -> float:
    """The level just above the dearest of the budgets ``run`` so far (unit cube; the top level if none is above)."""
    levels = np.sort(np.asarray(levels, dtype=np.float64))
    dearest = float(np.max(run)) if len(run) else float(levels[0])
    above = levels[levels > dearest + 1e-9]
    return float(above[0]) if len(above) else float(levels[-1])
