"""Global objectives and convergence detection for text GRPO (the env trainer's are in tests/train)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.envs.objectives import ObjectivesConfig
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.objectives import ObjectiveReward, judge_terms
from dspy_rl.grpo.rewards import ToolCommandRubric, resolve_reward_fn
from dspy_rl.grpo.run import train
from dspy_rl.grpo.tasks import load_task
from dspy_rl.utils.run_status import read_status


def _cfg(tmp_path: Path, *overrides: str) -> GRPOTrainConfig:
    base = ["mode=online", "task=tool_commands", "model=bow", "logging.progress_bar=false", "torch_threads=1",
            "logging.tensorboard=false", "logging.plot=false", "max_new_tokens=4", f"run_dir={tmp_path / 'run'}",
            "logging.log_every=1", "lr=0.05", "seed=1"]  # fmt: skip
    return to_object(compose("grpo", [*base, *overrides]), GRPOTrainConfig)


def _rows(tmp_path: Path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


def test_rubric_terms_sum_to_its_score_and_weights_reweight_them() -> None:
    task = load_task("tool_commands")
    rubric = ToolCommandRubric(task)
    item = next(it for it in task.items if it.tool == "pip_install" and it.arg == "numpy")
    completions = ["pip_install numpy", "pip_install flask", "pip_install numpy now", "cat numpy", "", "x y"]
    prompts = [item.prompt] * len(completions)
    scores = rubric(prompts, completions)
    same = ObjectiveReward(rubric.terms, ObjectivesConfig())
    assert same(prompts, completions) == pytest.approx(scores)
    metrics = same.pop_metrics()
    assert metrics["objective/query_satisfaction"] == pytest.approx((0.7 + 0.35 + 0.7 + 0.35) / 6)
    assert metrics["objective/quality"] == pytest.approx(0.3 * 4 / 6) and metrics["objective/safety"] == 0.0
    assert same.pop_metrics() == {}  # popped
    no_format = ObjectiveReward(rubric.terms, ObjectivesConfig(weights={"quality": 0.0}))
    assert no_format(prompts, completions) == pytest.approx([0.7, 0.35, 0.7, 0.35, 0.0, 0.0])
    doubled = resolve_reward_fn(
        "rubric", task, objectives=ObjectivesConfig(weights={"query_satisfaction": 2.0})
    )
    assert doubled(prompts, completions) == pytest.approx([1.7, 1.0, 1.4, 1.0, 0.0, 0.3])


def test_judge_scores_become_objective_terms_that_sum_to_the_judges_mean() -> None:
    answers = [
        {"score": 0.5, "per_judge": {"rubric": 0.2, "embedding": 0.8}},
        {"score": 0.9, "per_judge": {"embedding": 0.9}},  # the rubric judge left out of this item
    ]
    terms = judge_terms(
        lambda items: answers[: len(items)], {"rubric": "quality", "embedding": "query_satisfaction"}
    )
    rows = terms(["q1", "q2"], ["a", "b"])
    assert rows[0]["quality"] == pytest.approx(0.1) and rows[0]["query_satisfaction"] == pytest.approx(0.4)
    assert rows[1]["query_satisfaction"] == pytest.approx(0.9) and rows[1]["quality"] == 0.0
    reward = ObjectiveReward(terms, ObjectivesConfig())
    assert reward(["q1", "q2"], ["a", "b"]) == pytest.approx([0.5, 0.9])  # the unweighted judge mean
    with pytest.raises(ValueError, match=r"add objective_judges\.rubric="):
        judge_terms(lambda items: answers[:1], {"embedding": "query_satisfaction"})(["q"], ["a"])


def test_bad_terms_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown objectives"):
        ObjectiveReward(lambda p, c: [{"speed": 1.0}], ObjectivesConfig())(["p"], ["c"])
    with pytest.raises(ValueError, match="not finite"):
        ObjectiveReward(lambda p, c: [{"quality": float("nan")}], ObjectivesConfig())(["p"], ["c"])
    with pytest.raises(ValueError, match="1 rows for 2"):
        ObjectiveReward(lambda p, c: [{}], ObjectivesConfig())(["p", "q"], ["c", "d"])


def test_online_run_logs_objectives_and_trains_on_the_weighted_reward(tmp_path: Path) -> None:
    summary = train(_cfg(tmp_path, "steps=6", "objectives.weights.quality=0"))
    rows = [r for r in _rows(tmp_path) if "reward_mean" in r]
    assert len(rows) == 6 and summary.status == "completed"
    for r in rows:  # quality is measured but weighs nothing: the reward is the query-satisfaction term
        assert r["reward_mean"] == pytest.approx(r["objective/query_satisfaction"], abs=1e-6)
        assert "objective/quality" in r and r["objective/safety"] == 0.0


def test_text_grpo_converges_on_a_plateau_and_says_why(tmp_path: Path) -> None:
    # min_delta=1 and max_spread=1: any two full windows of rubric rewards (in [0, 1]) count as a plateau
    cfg = _cfg(tmp_path, "steps=50", "convergence.enabled=true", "convergence.window=4", "convergence.min_delta=1",
               "convergence.max_spread=1", "convergence.min_env_steps=10")  # fmt: skip
    summary = train(cfg)
    assert summary.status == "converged" and summary.steps == 10, summary  # not before min_env_steps=10
    assert summary.converged_reason.startswith("reward_mean plateaued at")
    status = read_status(tmp_path / "run")
    assert status["status"] == "converged" and status["reason"] == summary.converged_reason
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "converged"
    assert (tmp_path / "run" / "final").is_dir()


def test_objective_weights_need_a_reward_that_reports_terms(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="objectives.weights"):
        to_object(compose("grpo", ["dataset=x.jsonl", "objectives.weights.quality=0"]), GRPOTrainConfig)
    with pytest.raises(ConfigError, match="reports one number"):
        train(
            _cfg(tmp_path, "steps=1", "objectives.weights.quality=0"), reward_fn=lambda p, c: [0.0] * len(c)
        )
    with pytest.raises(ConfigError, match="objective_judges"):
        _cfg(tmp_path, "objective_judges.rubric=speed")
