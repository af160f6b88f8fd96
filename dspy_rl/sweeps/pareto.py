"""Score/cost Pareto front: the observations no other observation beats on both score and cost."""

from __future__ import annotations

import numpy as np


def pareto_front(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (higher score, lower cost is better), sorted by increasing cost.

    A point is dominated when another point has cost <= and score >= with at least one strict. Ties in both keep
    the first occurrence only.
    """
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    cost = np.asarray(cost, dtype=np.float64).reshape(-1)
    if score.shape != cost.shape:
        raise ValueError(f"score and cost must have the same length, got {score.shape} and {cost.shape}")
    order = np.lexsort((-score, cost))  # by cost, then by score descending
    front: list[int] = []
    best = -np.inf
    for i in order:
        if score[i] > best:
            front.append(int(i))
            best = score[i]
    return np.array(front, dtype=np.int64)


def front_baseline(
    front_cost: np.ndarray, front_score: np.ndarray, query_cost: np.ndarray, floor: float
) -> np.ndarray:
    """The best front score achievable at cost <= ``query_cost`` (a step function); ``floor`` below the cheapest."""
    front_cost = np.asarray(front_cost, dtype=np.float64)
    front_score = np.asarray(front_score, dtype=np.float64)
    idx = np.searchsorted(front_cost, np.asarray(query_cost, dtype=np.float64), side="right") - 1
    out = np.where(idx >= 0, front_score[np.clip(idx, 0, None)], floor)
    return out
