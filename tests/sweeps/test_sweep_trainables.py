"""Trial overrides reach the trainer's config intact; a real (tiny) PPO sweep runs end to end (slow)."""

from __future__ import annotations

import json

import pytest

from dspy_rl.cli.sweep import main as sweep_main
from dspy_rl.sweeps.trainables import trial_overrides


def test_trial_overrides_survive_hydra_parsing_with_awkward_trial_dirs() -> None:
    from dspy_rl.train import load_config

    run_dir = "/tmp/sweep/trial_1_algo.lr=0.001,total_env_steps=2048/it's"
    overrides = trial_overrides({"algo.lr": 1.2345678e-4, "total_env_steps": 2048}, ["env=easy"], run_dir)
    cfg = load_config(overrides)
    assert cfg.run_dir == run_dir
    assert cfg.algo.lr == pytest.approx(1.2345678e-4, rel=1e-12)
    assert cfg.total_env_steps == 2048


@pytest.mark.slow
def test_real_ppo_sweep_end_to_end(ray_session, tmp_path) -> None:
    run_dir = tmp_path / "ppo"
    argv = [
        "sweep=ppo_tiny",
        "num_samples=2",
        "max_concurrent=1",
        "sweep.parameters.total_env_steps.min=512",
        "sweep.parameters.total_env_steps.max=1024",
        f"run_dir={run_dir}",
    ]
    assert sweep_main(argv) == 0
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(0.0 <= r["score"] <= 1.0 and r["cost"] == r["config"]["total_env_steps"] for r in rows)
