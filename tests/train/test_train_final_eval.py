"""The trainer's final evaluation of the trained policy (``eval_episodes``), which sweeps use as their score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl import evaluation as eval_cli
from dspy_rl.config import ConfigError
from dspy_rl.trainer import EVAL_SEED_OFFSET, Trainer, load_config, run_training

from ._helpers import BACKEND, FAST

# lr/epochs that learn the default suite within a few tens of thousands of env steps.
LEARNS = [*FAST, "algo.lr=0.003", "algo.epochs=4", "logging.tensorboard=false", "seed=0"]


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_negative_eval_episodes_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"eval_episodes=-1 .*expected an integer >= 0"):
        load_config(["eval_episodes=-1"])
    assert load_config([]).eval_episodes == 0  # off unless asked for


def test_no_eval_keys_without_eval_episodes(tmp_path: Path) -> None:
    result = run_training([*FAST, "total_env_steps=2048", f"run_dir={tmp_path}"])
    assert not any(k.startswith("eval_") for k in result)


def test_trained_policy_evaluates_far_above_the_untrained_and_random_ones(tmp_path: Path) -> None:
    untrained = run_training(
        [*LEARNS, "total_env_steps=64", "eval_episodes=512", "eval_greedy=false", f"run_dir={tmp_path / 'u'}"]
    )
    reports: list[dict] = []
    trained = run_training(
        [
            *LEARNS,
            "total_env_steps=32768",
            "eval_episodes=512",
            "eval_greedy=false",
            f"run_dir={tmp_path / 't'}",
            "logging.tensorboard=true",
        ],
        report=reports.append,
    )
    random_policy = eval_cli.evaluate(
        eval_cli.load_config(
            ["policy=random", "episodes=512", f"backend={BACKEND}", f"env.seed={EVAL_SEED_OFFSET}"]
        )
    )
    for r in (untrained, trained):
        assert 0.0 <= r["eval_success_rate"] <= 1.0 and r["eval_episodes"] == 512
    assert trained["eval_success_rate"] >= random_policy.success_rate + 0.4, (trained, random_policy)
    assert trained["eval_success_rate"] >= untrained["eval_success_rate"] + 0.4, (trained, untrained)
    assert trained["eval_return"] > untrained["eval_return"]
    # Eval episodes are not training: env_steps stays the training budget; the trial cost of a sweep.
    assert trained["env_steps"] == 32768 and trained["eval_env_steps"] > 0
    # The last report carries the evaluation (what a Tune trial reports last); the iteration reports do not.
    assert reports[-1]["eval_success_rate"] == trained["eval_success_rate"]
    assert all("eval_success_rate" not in r for r in reports[:-1])
    rows = _rows(tmp_path / "t")
    assert rows[-1]["env_steps"] == 32768 and rows[-1]["eval_success_rate"] == trained["eval_success_rate"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(tmp_path / "t" / "tb"))
    tb.Reload()
    assert [e.step for e in tb.Scalars("eval_success_rate")] == [32768]


def test_final_eval_is_reproducible_and_uses_its_own_seed(tmp_path: Path) -> None:
    overrides = [
        *LEARNS,
        "total_env_steps=4096",
        "eval_episodes=256",
        "eval_greedy=false",
        f"run_dir={tmp_path}",
    ]
    result = run_training(overrides)
    again = Trainer(load_config([*overrides, f"resume={tmp_path}"])).evaluate_final()
    assert again["eval_success_rate"] == result["eval_success_rate"]
    assert again["eval_return"] == result["eval_return"]
    other = Trainer(load_config([*overrides, f"resume={tmp_path}", "eval_seed=5"])).evaluate_final()
    assert other["eval_return"] != result["eval_return"]  # other tasks, other episodes


def test_final_eval_with_runner_actors(ray_session, tmp_path: Path) -> None:
    result = run_training(
        [
            *FAST,
            "runtime.num_env_runners=1",
            "total_env_steps=4096",
            "eval_episodes=128",
            f"run_dir={tmp_path}",
        ]
    )
    assert result["env_steps"] == 4096 and result["eval_episodes"] == 128
    assert 0.0 <= result["eval_success_rate"] <= 1.0
