"""Env GRPO: snapshot groups on the runner, group-relative advantages, and learning through `dspy-rl train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dspy_rl.models.policy import MultiPolicy, state_to_numpy
from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec
from dspy_rl.trainer import run_training

from ._helpers import BACKEND, FAST


def test_groups_replay_one_snapshot_and_advantages_are_group_relative() -> None:
    g = 8
    runner = EnvRunner(
        {"num_envs": 32, "suite": "default", "backend": BACKEND}, RolloutSpec(32, 0.99, 0.95, 16), 3
    )
    policy = MultiPolicy(runner.env.obs_dim, runner.env.num_tools, runner.env.num_args, 16)
    out = runner.sample_groups(state_to_numpy(policy), g)
    first = out["phase"] == 0
    assert first.sum() == 32  # every env starts exactly one episode
    start_obs = out["obs"][first]  # rows of the first step, env order
    for k in range(0, 32, g):
        assert (start_obs[k : k + g] == start_obs[k]).all(), "a group did not start from one snapshot"
    assert not (start_obs[0] == start_obs[g:]).all(axis=1).all()  # groups differ (new tasks)
    ret = out["stats"]["episode_return"]
    assert ret.shape == (32,) and out["stats"]["episode_length"].sum() == len(out["obs"])
    adv_first = out["adv"][first]
    for k in range(0, 32, g):
        grp = adv_first[k : k + g]
        if np.ptp(ret[k : k + g]) > 1e-3:
            assert abs(grp.sum()) < 1e-4 and abs(grp.std(ddof=1) - 1) < 1e-2
            # a monotone transform of the returns within the group
            assert (
                np.argsort(grp, kind="stable").tolist() == np.argsort(ret[k : k + g], kind="stable").tolist()
            )
        else:  # equal returns (up to float rounding): no signal
            assert (np.abs(grp) < 1e-6).all()


def test_env_grpo_learns_without_a_critic(tmp_path: Path) -> None:
    result = run_training(
        [*FAST, "algo=grpo", "env.num_envs=128", "total_env_steps=100000", "seed=2", f"run_dir={tmp_path}"]
    )
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["iter_success_rate"] < 0.15
    late = np.mean([r["iter_success_rate"] for r in rows[-3:]])
    assert late > 0.3, late
    assert rows[-1]["kl_beta"] > 0 and "A/kl" in rows[-1] and "C/clip_frac" in rows[-1]
    assert result["env_steps"] >= 100000
    assert not any(k.endswith("v_loss") for k in rows[-1])  # no critic
