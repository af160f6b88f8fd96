"""Global objectives of a ToolEnv step: its reward split into five terms that sum back to it exactly.

| objective            | ToolEnv term |
|----------------------|--------------|
| `query_satisfaction` | the completion bonus (the task's goal reached) |
| `performance`        | tool outcomes: `success` on a successful call, `failure` on a flaky failure |
| `safety`             | `invalid` on an invalid (masked or out-of-range) action |
| `efficiency`         | the per-step cost and the `empty` penalty (wrong argument, nothing new, irrelevant tool) |
| `quality`            | the progress shaping (newly held relevant facts) |

With every weight 1 the weighted reward is the env's reward; other weights re-weight the terms
(``objectives.weights`` in ``dspy-rl train``). The terms are read back from the step's result code and
``terminated`` flag, so both backends and every adapter give the same split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from dspy_rl.config import require
from dspy_rl.envs.suite import RESULT_EMPTY, RESULT_FAILURE, RESULT_INVALID, RESULT_SUCCESS, Rewards

OBJECTIVES = ("query_satisfaction", "performance", "safety", "efficiency", "quality")


@dataclass
class ObjectivesConfig:
    weights: dict[str, float] = field(default_factory=lambda: dict.fromkeys(OBJECTIVES, 1.0))
    """Weight of each objective in the training reward (all 1: the env's own reward). Non-negative, not all 0."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(OBJECTIVES))
        require(not unknown, "objectives.weights", unknown, f"objective names among {', '.join(OBJECTIVES)}")
        for name, w in self.weights.items():
            require(
                isinstance(w, int | float) and np.isfinite(w) and w >= 0,
                f"objectives.weights.{name}",
                w,
                "a finite number >= 0",
            )
        require(
            any(self.weights.get(k, 1.0) > 0 for k in OBJECTIVES),
            "objectives.weights",
            dict(self.weights),
            "at least one weight > 0",
        )

    def vector(self) -> np.ndarray:
        """Weights in :data:`OBJECTIVES` order (missing ones are 1)."""
        return np.array([float(self.weights.get(k, 1.0)) for k in OBJECTIVES])


def decompose(rewards: np.ndarray, results: np.ndarray, terminated: np.ndarray, rw: Rewards) -> np.ndarray:
    """The (n, 5) objective terms of one step of n envs, in :data:`OBJECTIVES` order; rows sum to ``rewards``
    (up to float32 rounding of the env's reward)."""
    r = rewards.astype(np.float64)
    n = r.shape[0]
    terms = np.zeros((n, len(OBJECTIVES)))
    success, failure = results == RESULT_SUCCESS, results == RESULT_FAILURE
    terms[:, 0] = np.where(terminated, rw.completion, 0.0)
    terms[:, 1] = np.where(success, rw.success, 0.0) + np.where(failure, rw.failure, 0.0)
    terms[:, 2] = np.where(results == RESULT_INVALID, rw.invalid, 0.0)
    terms[:, 3] = -rw.step_cost + np.where(results == RESULT_EMPTY, rw.empty, 0.0)
    # Shaping is what remains of a successful call's reward (it depends on the task's relevant facts).
    terms[:, 4] = np.where(success, r - terms[:, :4].sum(axis=1), 0.0)
    return terms


def weighted(terms: np.ndarray, weights: Mapping[str, float] | np.ndarray) -> np.ndarray:
    """The training reward: ``terms @ weights``."""
    w = weights if isinstance(weights, np.ndarray) else np.array([weights.get(k, 1.0) for k in OBJECTIVES])
    return terms @ w
