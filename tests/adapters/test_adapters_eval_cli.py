"""`dspy-rl eval`: the default suite is worth learning (oracle >= 95%, random <= 20%) and bad configs fail clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dspy_rl.cli import main as dspy_rl_main
from dspy_rl.cli.eval import main as eval_main
from dspy_rl.config import ConfigError
from dspy_rl.envs.baselines import random_masked
from dspy_rl.evaluation import evaluate, load_config


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert eval_main([*argv, "json=true", "env.backend=auto"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_oracle_solves_default_suite(capsys: pytest.CaptureFixture[str]) -> None:
    res = _run_json(capsys, "suite=default", "policy=oracle", "episodes=200", "num_envs=64")
    assert res["episodes"] == 200 and res["suite"] == "default"
    assert res["success_rate"] >= 0.95
    assert res["mean_return"] > 0


def test_random_rarely_solves_default_suite(capsys: pytest.CaptureFixture[str]) -> None:
    res = _run_json(capsys, "suite=default", "policy=random", "episodes=200", "num_envs=64", "seed=3")
    assert res["episodes"] == 200
    assert res["success_rate"] <= 0.20
    oracle = _run_json(capsys, "suite=default", "policy=oracle", "episodes=200", "num_envs=64")
    assert res["mean_return"] < oracle["mean_return"]
    assert res["mean_length"] > oracle["mean_length"]


def test_table_output_and_env_group(capsys: pytest.CaptureFixture[str]) -> None:
    assert eval_main(["env=easy", "--policy", "oracle", "--episodes", "20", "env.backend=auto"]) == 0
    out = capsys.readouterr().out
    assert "success rate" in out and "mean return" in out and "mean length" in out and "easy" in out


def test_every_env_slot_contributes_its_quota() -> None:
    cfg = load_config(["suite=easy", "policy=random", "episodes=10", "num_envs=4", "env.backend=auto"])
    assert evaluate(cfg).episodes == 10


def test_uniform_masked_samples_only_valid_entries_uniformly() -> None:
    rng = np.random.default_rng(0)
    mask = np.array([[False, True, False, True]] * 20000)
    picks = random_masked(mask, rng)
    assert set(np.unique(picks)) == {1, 3}
    assert abs((picks == 1).mean() - 0.5) < 0.02


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["policy=greedy"], "policy='greedy'"),
        (["suite=no_such_suite"], "unknown suite"),
        (["episodes=0"], "episodes=0"),
        (["policy=checkpoint"], "checkpoint=None"),
        (["env.backend=jax"], "env.backend"),
        (["no_such_key=1"], "no_such_key"),
    ],
)
def test_bad_configs_raise_config_error(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        evaluate(load_config(argv))


def test_dispatcher_reports_config_errors_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert dspy_rl_main(["eval", "policy=greedy"]) == 2
    assert "policy='greedy' is not allowed" in capsys.readouterr().err
