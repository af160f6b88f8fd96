"""The unchanged trainers on ShellEnv: `dspy-rl train env=shell` (PPO and GRPO, which replays workspace snapshots),
EnvRunner actors on Ray, `dspy-rl eval env=shell`, and sim-to-real: trained in the simulator only, then
evaluated for real."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.evaluation import evaluate, load_config
from dspy_rl.trainer.trainer import run_training

pytestmark = pytest.mark.usefixtures("sandbox_ok")

TINY = [
    "env=shell",
    "env.num_envs=2",
    "algo.rollout_len=4",
    "algo.minibatch_size=8",
    "total_env_steps=16",
    "logging.progress_bar=false",
    "logging.plot=false",
    "runtime.num_env_runners=0",
]


def test_ppo_and_grpo_train_on_real_commands(tmp_path: Path) -> None:
    ppo = run_training([*TINY, f"run_dir={tmp_path / 'ppo'}"])
    assert ppo["env_steps"] == 16
    rows = [json.loads(x) for x in (tmp_path / "ppo" / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert rows and "A/pg_loss" in rows[-1]
    grpo = run_training([*TINY, "algo=grpo", "algo.group_size=2", f"run_dir={tmp_path / 'grpo'}"])
    assert grpo["env_steps"] >= 16


@pytest.mark.slow
def test_env_runner_actors_step_shell_env(tmp_path: Path, ray_session) -> None:
    result = run_training([*TINY, "runtime.num_env_runners=1", "runtime.num_cpus=2", f"run_dir={tmp_path}"])
    assert result["env_steps"] == 16


@pytest.mark.slow
def test_trained_in_the_simulator_succeeds_for_real(tmp_path: Path) -> None:
    """`make train` in small: PPO in the Rust simulator on the shell suite, then the policy in ShellEnv."""
    run_training(
        [
            "env=shell_sim",
            "total_env_steps=300000",
            "logging.progress_bar=false",
            "logging.plot=false",
            "runtime.num_env_runners=0",
            f"run_dir={tmp_path}",
        ]
    )
    common = ["policy=checkpoint", f"checkpoint={tmp_path}"]
    sim = evaluate(load_config(["env=shell_sim", "episodes=500", *common]))
    real = evaluate(load_config(["env=shell", "episodes=76", "env.num_envs=38", *common]))
    assert sim.success_rate >= 0.9, sim
    assert real.success_rate >= 0.9, real


@pytest.mark.slow
def test_a_real_tune_sweep_on_shellenv(ray_session, tmp_path: Path) -> None:
    """`dspy-rl sweep sweep=ppo_shell`: Ray Tune trials train and evaluate on real commands (about a minute)."""
    from dspy_rl.cli.sweep import main as sweep_main

    argv = [
        "sweep=ppo_shell",
        "num_samples=2",
        "max_concurrent=1",
        "sweep.parameters.total_env_steps.max=128",
    ]
    assert sweep_main([*argv, f"run_dir={tmp_path / 'sweep'}"]) == 0
    rows = json.loads((tmp_path / "sweep" / "results.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), rows
    assert all(0.0 <= r["score"] <= 1.0 and r["cost"] == r["config"]["total_env_steps"] for r in rows)
