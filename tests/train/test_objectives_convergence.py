"""Global objectives (exact reward split, weights, one-line refusals) and convergence detection; curriculum and
objectives through `dspy-rl train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError
from dspy_rl.envs import VecToolEnv, load_suite
from dspy_rl.envs.config import EnvConfig
from dspy_rl.envs.objectives import OBJECTIVES, ObjectivesConfig, decompose, weighted
from dspy_rl.evaluation import EvalConfig, evaluate
from dspy_rl.trainer import run_training
from dspy_rl.utils.convergence import ConvergenceConfig, PlateauDetector
from dspy_rl.utils.run_logger import curve_rows

from ._helpers import BACKEND, FAST


@pytest.mark.parametrize("suite", ["default", "expert"])
def test_objective_terms_sum_to_the_env_reward(suite: str) -> None:
    env = VecToolEnv(64, suite, seed=2, backend=BACKEND, invalid_action="penalty")
    rw = load_suite(suite).rewards
    rng = np.random.default_rng(0)
    seen = np.zeros(len(OBJECTIVES), bool)
    for step in range(300):
        if step % 4:  # mostly the oracle, so that episodes end in success
            tools, args = env.oracle_actions()
        else:  # random actions, some of them invalid
            tools = rng.integers(0, env.num_tools, 64)
            args = rng.integers(0, env.num_args, 64)
        env.step(tools, args)
        terms = decompose(env.rewards, env.results, env.terminated, rw)
        assert np.allclose(terms.sum(axis=1), env.rewards, atol=1e-5)
        assert np.allclose(weighted(terms, dict.fromkeys(OBJECTIVES, 1.0)), env.rewards, atol=1e-5)
        seen |= (terms != 0).any(axis=0)
    assert seen.all()  # every objective's term occurred


def test_objective_weights_are_validated_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert ObjectivesConfig({"safety": 2.0}).vector().tolist() == [1, 1, 2, 1, 1]
    with pytest.raises(ConfigError, match="objectives.weights.safety=-1"):
        ObjectivesConfig({"safety": -1.0})
    with pytest.raises(ConfigError, match="at least one weight > 0"):
        ObjectivesConfig(dict.fromkeys(OBJECTIVES, 0.0))
    with pytest.raises(ConfigError, match="objective names"):
        ObjectivesConfig({"speed": 1.0})
    for argv in (["objectives.weights.safety=-2"], [f"objectives.weights.{k}=0" for k in OBJECTIVES]):
        assert cli_main(["train", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "objectives.weights" in err and "\n" not in err


def test_plateau_detector() -> None:
    det = PlateauDetector(ConvergenceConfig(enabled=True, window=5, min_delta=0.01, max_spread=0.05))
    rising = [det.update(v, i) for i, v in enumerate(np.linspace(0, 0.9, 10))]
    assert rising == [None] * 10  # still improving
    flat = [det.update(0.95 + 0.001 * (i % 2), 10 + i) for i in range(10)]
    assert flat[-1] is not None and "success_rate plateaued at 0.95" in flat[-1]
    assert flat[:9].count(None) >= 5
    noisy = PlateauDetector(ConvergenceConfig(enabled=True, window=3, min_delta=0.01, max_spread=0.05))
    assert all(noisy.update(v, 0) is None for v in [0.5, 0.9, 0.5, 0.9, 0.5, 0.9])  # no gain but not flat
    assert (
        PlateauDetector(ConvergenceConfig(enabled=True, window=2, min_env_steps=100)).update(1.0, 5) is None
    )
    with pytest.raises(ConfigError, match="convergence.window"):
        ConvergenceConfig(window=1)


def test_convergence_ends_a_ppo_run_early(tmp_path: Path) -> None:
    result = run_training(
        [
            *FAST,
            "env=easy",
            "total_env_steps=2000000",
            "convergence.enabled=true",
            "convergence.window=8",
            "convergence.min_delta=0.01",
            "convergence.max_spread=0.02",
            "objectives.weights.efficiency=2.0",
            f"run_dir={tmp_path}",
        ]
    )
    assert result["status"] == "converged" and result["env_steps"] < 2_000_000
    assert "plateaued" in result["converged_reason"] and result["success_rate"] > 0.9
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["objective/query_satisfaction"] > 9 and rows[-1]["objective/efficiency"] < 0
    # the learning curve starts once the rolling rate is free of the early-episode bias
    assert rows[0]["success_settled"] == 0 and rows[-1]["success_settled"] == 1
    plotted = curve_rows(rows)
    assert plotted[0]["env_steps"] >= 12 * 64 and all(r["success_settled"] == 1 for r in plotted)


def test_curriculum_promotes_and_resumes_mid_curriculum(tmp_path: Path) -> None:
    argv = [
        *FAST,
        "curriculum=[easy,default]",
        "curriculum.promote_at=0.8",
        "curriculum.min_episodes=100",
        "total_env_steps=60000",
        f"run_dir={tmp_path}",
    ]
    first = run_training(argv)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    stages = [r["curriculum_stage"] for r in rows if "curriculum_stage" in r]
    assert stages[0] == 0 and stages[-1] == 1, stages  # easy was promoted to default
    assert rows[-1]["curriculum_success_rate"] >= 0 and first["env_steps"] >= 60000
    resumed = run_training([*argv[:-2], "total_env_steps=80000", "eval_episodes=64", f"resume={tmp_path}"])
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["curriculum_stage"] for r in rows if "curriculum_stage" in r][-1] == 1  # resumed on default
    assert resumed["env_steps"] >= 80000
    # the final evaluation runs the last stage's suite in the curriculum's padded layout, as `dspy-rl eval` does
    assert resumed["eval_episodes"] == 64 and 0.0 <= resumed["eval_success_rate"] <= 1.0
    res = evaluate(
        EvalConfig(
            env=EnvConfig(suite="default", backend=BACKEND), policy="checkpoint", checkpoint=str(tmp_path)
        )
    )
    assert res.suite == "default" and res.episodes == 1000 and 0.0 <= res.success_rate <= 1.0
