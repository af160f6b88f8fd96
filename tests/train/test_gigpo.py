"""GiGPO: exact anchor-state grouping, step-level advantages, runner integration and learning via `dspy-rl train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dspy_rl.learners.gigpo import (
    anchor_keys,
    gigpo_advantages,
    returns_to_go,
    state_ids,
    step_advantages,
)
from dspy_rl.learners.grpo import group_advantages
from dspy_rl.models.policy import MultiPolicy, state_to_numpy
from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec
from dspy_rl.trainer import run_training

from ._helpers import BACKEND, FAST


def test_state_ids_match_identical_rows_only() -> None:
    keys = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [1, 0, 0], [0, 1, 1]], np.uint8)
    ids, n = state_ids(keys)
    assert n == 3
    assert ids[0] == ids[2] and ids[1] == ids[4]
    assert len({ids[0], ids[1], ids[3]}) == 3


def test_anchor_keys_ignore_the_step_fraction_but_not_the_group() -> None:
    obs = np.array(
        [[1, 0, 1, 0.10], [1, 0, 1, 0.55], [1, 0, 1, 0.10], [1, 1, 1, 0.10]], np.float32
    )  # last column: t / episode_len
    group = np.array([0, 0, 1, 0])
    ids, n = state_ids(anchor_keys(obs, group))
    assert ids[0] == ids[1]  # same state, other time: one anchor
    assert ids[0] != ids[2]  # same state in another group (another snapshot): not comparable
    assert ids[3] != ids[0] and n == 3


def test_returns_to_go_stop_at_each_envs_end() -> None:
    rewards = np.array([[1.0, 2.0], [1.0, 5.0], [1.0, 7.0]])
    alive = np.array([[True, True], [True, False], [True, False]])
    rtg = returns_to_go(rewards, alive, gamma=0.5)
    assert rtg[:, 0].tolist() == [1 + 0.5 + 0.25, 1 + 0.5, 1.0]
    assert rtg[:, 1].tolist() == [2.0, 0.0, 0.0]  # env 1 ended at t=0: later rewards belong to no episode


def test_step_advantages_normalize_within_anchor_groups() -> None:
    returns = np.array([1.0, 3.0, 10.0, 4.0, 4.0])
    ids = np.array([0, 0, 1, 2, 2])
    adv = step_advantages(returns, ids, 3, "std")
    assert adv[:2] == pytest.approx([-1.0, 1.0], abs=1e-5)
    assert adv[2] == 0.0  # a state visited once has no step-level signal
    assert adv[3:] == pytest.approx([0.0, 0.0])  # equal returns: no signal
    assert step_advantages(returns, ids, 3, "mean")[:2].tolist() == [-1.0, 1.0]
    with pytest.raises(ValueError, match="step_norm"):
        step_advantages(returns, ids, 3, "bogus")


def test_gigpo_advantages_by_hand() -> None:
    # One group of two envs, three steps; env 1 ends after two steps. obs: 2 state bits + step fraction.
    obs_t = np.array(
        [
            [[0, 0, 0.0], [0, 0, 0.0]],  # both start in state S0
            [[1, 0, 0.1], [0, 1, 0.1]],  # env 0 -> S1, env 1 -> S2
            [[0, 0, 0.2], [9, 9, 9.0]],  # env 0 back in S0 (at another time); env 1 is done
        ],
        np.float32,
    )
    rewards = np.array([[1.0, 0.0], [0.0, 3.0], [2.0, 0.0]])
    alive = np.array([[True, True], [True, True], [True, False]])
    t_idx, e_idx = np.nonzero(alive)
    ret = np.array([3.0, 3.0])  # equal episode returns: GRPO alone has no signal
    adv, stats = gigpo_advantages(obs_t[t_idx, e_idx], rewards, alive, ret, group_size=2, gamma=1.0)
    # rows (time-major): (0,e0) S0 G=3, (0,e1) S0 G=3, (1,e0) S1 G=2, (1,e1) S2 G=3, (2,e0) S0 G=2
    # anchor S0 = {3, 3, 2}: mean 8/3, std sqrt(2/9)
    s = np.sqrt(2 / 9)
    expected = [(3 - 8 / 3) / s, (3 - 8 / 3) / s, 0.0, 0.0, (2 - 8 / 3) / s]
    assert adv == pytest.approx(expected, rel=1e-4)
    assert stats["anchor_groups"] == 3 and stats["anchored_step_frac"] == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="groups of 3"):
        gigpo_advantages(obs_t[t_idx, e_idx], rewards, alive, ret, group_size=3)


def test_runner_adds_step_advantages_to_the_group_ones() -> None:
    g = 8
    runner = EnvRunner(
        {"num_envs": 32, "suite": "default", "backend": BACKEND}, RolloutSpec(32, 0.99, 0.95, 16), 5
    )
    weights = state_to_numpy(MultiPolicy(runner.env.obs_dim, runner.env.num_tools, runner.env.num_args, 16))
    torch.manual_seed(0)
    out = runner.sample_groups(weights, g, step_weight=1.0, gamma=0.95)
    stats = out["stats"]
    # every group starts its G rollouts in one state: at least the first steps are anchored
    assert 32 / len(out["obs"]) <= stats["anchored_step_frac"] < 1.0
    assert stats["step_adv_abs"] > 0
    # step_weight=0 is GRPO: every step of a rollout carries the rollout's group advantage
    grpo = runner.sample_groups(weights, g, step_weight=0.0)
    ret = torch.from_numpy(grpo["stats"]["episode_return"].astype(np.float64))
    group_adv = group_advantages(ret, torch.arange(32) // g).numpy()
    first = grpo["phase"] == 0
    assert np.allclose(grpo["adv"][first], group_adv, atol=1e-5)


def test_gigpo_trains_through_dspy_rl_train(tmp_path: Path) -> None:
    result = run_training(
        [*FAST, "algo=gigpo", "env.num_envs=128", "total_env_steps=100000", "seed=2", f"run_dir={tmp_path}"]
    )
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["iter_success_rate"] < 0.15
    late = np.mean([r["iter_success_rate"] for r in rows[-3:]])
    assert late > 0.3, late
    assert 0 < rows[-1]["anchored_step_frac"] < 1 and rows[-1]["kl_beta"] > 0
    assert result["env_steps"] >= 100000
