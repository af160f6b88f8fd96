"""GiGPO on ToolEnv: group-in-group advantages (Feng et al., 2025, "Group-in-Group Policy Optimization").

GRPO gives every step of a rollout the same, episode-level advantage. GiGPO adds a step-level one:
within a GRPO group (G rollouts replayed from one env snapshot) the same environment state is often visited by
several rollouts (an *anchor state*); the actions taken there are compared by the discounted return that
followed them. ToolEnv states are exact (a fact bitset, the last tool and result, the revealed target, the task),
so anchor states are found by exact matching on the observation, minus its step-fraction column: two visits of
the same state at different times form one anchor group, as in the paper.

For step ``t`` of rollout ``i`` in group ``g``:

* episode advantage ``A_E = (R_i - mean_g R) / std_g R`` (:func:`dspy_rl.learners.grpo.group_advantages`);
* return-to-go ``G_t = sum_k gamma^k r_{t+k}`` (to the end of the rollout's episode);
* step advantage ``A_S = (G_t - mean_a G) / std_a G`` over the anchor group ``a`` of (g, state)
  (``step_norm="mean"`` only subtracts the mean); 0 for a state visited once;
* ``A = A_E + step_weight * A_S``.

The loss is GRPO's (:mod:`dspy_rl.learners.grpo`, via :class:`dspy_rl.learners.grpo_env.GRPOEnvLearner`):
GiGPO only changes the advantages. The runner (``EnvRunner.sample_groups``) calls :func:`gigpo_advantages`.
"""

from __future__ import annotations

import numpy as np
import torch

from dspy_rl.learners.grpo import group_advantages

STEP_NORMS = ("std", "mean")


def state_ids(keys: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense ids of identical rows of a 2-D array: ``ids[i] == ids[j]`` iff ``keys[i]`` equals ``keys[j]``."""
    keys = np.ascontiguousarray(keys)
    if keys.ndim != 2:
        raise ValueError(f"keys must be 2-D (rows = states), got shape {keys.shape}")
    rows = keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()
    _, ids = np.unique(rows, return_inverse=True)
    ids = ids.ravel()
    return ids.astype(np.int64), int(ids.max()) + 1 if ids.size else 0


def anchor_keys(obs: np.ndarray, group: np.ndarray, ignore_last: int = 1) -> np.ndarray:
    """Exact state keys of ToolEnv observations: the group id, then the 0/1 observation bits packed, minus the
    last ``ignore_last`` columns (the step fraction), so the same state reached at another time matches."""
    bits = np.packbits(obs[:, : obs.shape[1] - ignore_last] > 0.5, axis=1)
    gid = np.ascontiguousarray(group.astype("<i8")).view(np.uint8).reshape(len(group), 8)
    return np.concatenate([gid, bits], axis=1)


def returns_to_go(rewards: np.ndarray, alive: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return-to-go of time-major ``rewards`` (T, n); steps where ``alive`` is False count 0 and end
    nothing (each env's episode ends at its last alive step)."""
    out = np.zeros(rewards.shape, np.float64)
    acc = np.zeros(rewards.shape[1], np.float64)
    for t in range(rewards.shape[0] - 1, -1, -1):
        acc = np.where(alive[t], rewards[t] + gamma * acc, 0.0)
        out[t] = acc
    return out


def step_advantages(
    returns: np.ndarray, ids: np.ndarray, num_ids: int, norm: str = "std", eps: float = 1e-6
) -> np.ndarray:
    """``(G - mean_a G) / std_a G`` per anchor group ``a = ids`` (population std; 0 for singletons)."""
    if norm not in STEP_NORMS:
        raise ValueError(f"step_norm must be one of {STEP_NORMS}, got {norm!r}")
    count = np.bincount(ids, minlength=num_ids).astype(np.float64)
    mean = np.bincount(ids, weights=returns, minlength=num_ids) / np.maximum(count, 1)
    centered = returns - mean[ids]
    if norm == "mean":
        adv = centered
    else:
        var = np.bincount(ids, weights=centered**2, minlength=num_ids) / np.maximum(count, 1)
        adv = centered / (np.sqrt(var[ids]) + eps)
    return np.where(count[ids] > 1, adv, 0.0)


def gigpo_advantages(
    obs: np.ndarray,
    rewards: np.ndarray,
    alive: np.ndarray,
    episode_return: np.ndarray,
    group_size: int,
    gamma: float = 0.95,
    step_weight: float = 1.0,
    step_norm: str = "std",
) -> tuple[np.ndarray, dict[str, float]]:
    """GiGPO advantages of a group batch, one per alive step, time-major (the runner's concatenation order).

    ``rewards`` and ``alive`` are (T, n); ``obs`` holds the observation of every alive step in that order
    (``obs[k]`` is step ``np.nonzero(alive)[k]``); ``episode_return`` (n,). Envs ``g*G .. g*G+G-1`` form group
    ``g``. Returns the advantages and grouping stats (anchor groups, share of steps in an anchor group > 1).
    """
    n = episode_return.shape[0]
    if n % group_size:
        raise ValueError(f"{n} envs do not split into groups of {group_size}")
    t_idx, env_idx = np.nonzero(alive)  # time-major, envs ascending
    if obs.shape[0] != t_idx.size:
        raise ValueError(f"obs has {obs.shape[0]} rows but alive marks {t_idx.size} steps")
    episode = group_advantages(torch.from_numpy(episode_return), torch.arange(n) // group_size).numpy()
    ids, num_ids = state_ids(anchor_keys(obs, env_idx // group_size))
    rtg = returns_to_go(rewards, alive, gamma)[t_idx, env_idx]
    step = step_advantages(rtg, ids, num_ids, step_norm)
    count = np.bincount(ids, minlength=num_ids)
    stats = {
        "anchor_groups": float(num_ids),
        "anchored_step_frac": float((count[ids] > 1).mean()) if ids.size else 0.0,
        "step_adv_abs": float(np.abs(step).mean()) if ids.size else 0.0,
    }
    return (episode[env_idx] + step_weight * step).astype(np.float32), stats
