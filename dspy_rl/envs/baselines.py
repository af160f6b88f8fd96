"""The uniformly random baseline policy of ToolEnv (uniform over the masks); the scripted oracle is
``env.oracle_actions()``. Evaluating a policy is :func:`dspy_rl.evaluation.evaluate` (``dspy-rl eval``)."""

from __future__ import annotations

import numpy as np

from dspy_rl.envs import VecEnv


def random_masked(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random allowed index per row of a boolean mask (every row must allow something)."""
    scores = rng.random(mask.shape)
    scores[~mask] = -1.0
    return scores.argmax(axis=1).astype(np.int64)


def random_actions(env: VecEnv, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random tool among ``tool_mask`` and argument among ``arg_mask``, per env."""
    return random_masked(env.tool_mask, rng), random_masked(env.arg_mask, rng)
