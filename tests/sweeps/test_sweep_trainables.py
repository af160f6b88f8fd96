"""Trial overrides reach the trainer's config intact; a real (tiny) PPO sweep runs end to end (slow)."""

from __future__ import annotations

import json

import pytest

from dspy_rl.cli.sweep import main as sweep_main
from dspy_rl.sweeps.trainables import trial_overrides


def test_trial_overrides_survive_hydra_parsing_with_awkward_trial_dirs() -> None:
    from dspy_rl.trainer import load_config

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


def test_train_trainable_reports_only_results_that_carry_the_sweep_metric(monkeypatch, tmp_path) -> None:
    """Tune requires the metric in every result: with eval_success_rate only the trainer's final report goes out;
    a trial that never reports the metric fails with a message naming eval_episodes."""
    import types

    import dspy_rl.trainer
    from dspy_rl.sweeps import trainables

    sent: list[dict] = []
    fake_tune = types.SimpleNamespace(
        report=sent.append,
        get_context=lambda: types.SimpleNamespace(get_trial_dir=lambda: str(tmp_path)),
    )
    monkeypatch.setattr(trainables, "tune", fake_tune)

    def fake_training(overrides, report):
        assert f"run_dir='{tmp_path / 'train'}'" in overrides and "algo.lr=0.01" in overrides
        report({"env_steps": 2048, "success_rate": 0.1, "status": "running"})
        report({"env_steps": 4096, "success_rate": 0.2})
        if "eval_episodes=64" in overrides:
            report({"env_steps": 4096, "success_rate": 0.2, "eval_success_rate": 0.9, "flag": True})
        return {}

    monkeypatch.setattr(dspy_rl.trainer, "run_training", fake_training)
    trainables.train_trainable({"algo.lr": 0.01}, fixed=["eval_episodes=64"], metric="eval_success_rate")
    assert sent == [
        {"env_steps": 4096, "success_rate": 0.2, "eval_success_rate": 0.9}
    ]  # numbers only, final one
    sent.clear()
    trainables.train_trainable({"algo.lr": 0.01}, fixed=[], metric="success_rate")
    assert [r["env_steps"] for r in sent] == [2048, 4096]
    with pytest.raises(RuntimeError, match="eval_episodes"):
        trainables.train_trainable({"algo.lr": 0.01}, fixed=[], metric="eval_success_rate")
