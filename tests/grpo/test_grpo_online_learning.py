"""Online text GRPO on the verifiable tool-command task: the policy's mean reward rises (fast and slow checks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dspy_rl.config import compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.rewards import ToolCommandRubric, resolve_reward_fn
from dspy_rl.grpo.run import train
from dspy_rl.grpo.tasks import load_task


def _cfg(tmp_path: Path, *overrides: str) -> GRPOTrainConfig:
    base = ["mode=online", "task=tool_commands", "logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false",
            "max_new_tokens=4", f"run_dir={tmp_path / 'run'}", "logging.log_every=10"]  # fmt: skip
    return to_object(compose("grpo", [*base, *overrides]), GRPOTrainConfig)


def test_rubric_scores_tool_argument_and_format():
    task = load_task("tool_commands")
    rubric = ToolCommandRubric(task)
    item = next(it for it in task.items if it.tool == "pip_install" and it.arg == "numpy")
    p = item.prompt
    assert rubric([p] * 6, ["pip_install numpy", "pip_install flask", "pip_install numpy now", "cat numpy", "", "x y"]) == pytest.approx([1.0, 0.65, 0.7, 0.65, 0.0, 0.3])  # fmt: skip
    with pytest.raises(KeyError, match="not part of task"):
        rubric(["unknown prompt"], ["ls"])
    assert len(task.items) == 96 and len(set(task.prompts)) == 96


def test_reward_spec_resolution(tmp_path: Path):
    task = load_task("tool_commands")
    assert isinstance(resolve_reward_fn("rubric", task), ToolCommandRubric)
    fn = resolve_reward_fn("dspy_rl.grpo.rewards:ToolCommandRubric", task)
    assert fn is ToolCommandRubric
    with pytest.raises(ValueError, match="cannot import"):
        resolve_reward_fn("no_such_module_xyz:f", task)
    with pytest.raises(ValueError, match="expected 'rubric', 'judges'"):
        resolve_reward_fn("nonsense", task)


def test_online_bow_reward_rises_fast(tmp_path: Path):
    summary = train(_cfg(tmp_path, "model=bow", "steps=60", "lr=0.05", "eval_every=60", "seed=1"))
    start, end = summary.eval_reward[0], summary.eval_reward[60]
    assert start <= 0.05  # zero-initialized: uniform over ~100 words
    assert end >= 0.25, summary.eval_reward


def test_online_with_a_custom_reward_callable(tmp_path: Path):
    # reward = 1 for completions that start with "ls": the policy learns that prefix whatever the prompt
    def starts_with_ls(prompts, completions):
        return [1.0 if c.split()[:1] == ["ls"] else 0.0 for c in completions]

    summary = train(
        _cfg(tmp_path, "model=bow", "steps=40", "lr=0.1", "kl_target=0"), reward_fn=starts_with_ls
    )
    assert summary.first_reward_mean <= 0.1 and summary.last_reward_mean >= 0.5


@pytest.mark.slow
def test_online_bow_reaches_high_reward(tmp_path: Path):
    summary = train(_cfg(tmp_path, "model=bow", "steps=600", "lr=0.03", "group_size=16", "eval_every=300"))
    assert summary.eval_reward[0] <= 0.3
    assert summary.eval_reward[600] >= 0.8, summary.eval_reward


def test_online_tiny_gpt2_runs_end_to_end(tmp_path: Path):
    summary = train(
        _cfg(
            tmp_path,
            "model=tiny-gpt2",
            "tiny_layers=1",
            "tiny_embd=32",
            "steps=3",
            "group_size=4",
            "batch_groups=2",
            "logging.log_every=1",
        )  # fmt: skip
    )
    from dspy_rl.utils.run_logger import read_metrics

    rows = read_metrics(tmp_path / "run")
    assert summary.steps == 3 and [r["step"] for r in rows] == [0, 1, 2]
    assert all(r["samples"] == 8 and 1 <= r["response_tokens"] <= 4 for r in rows)
    assert (tmp_path / "run" / "model" / "tokenizer.json").is_file()


@pytest.mark.slow
def test_online_tiny_gpt2_reward_rises(tmp_path: Path):
    summary = train(
        _cfg(
            tmp_path,
            "model=tiny-gpt2",
            "tiny_layers=1",
            "tiny_embd=128",
            "steps=300",
            "lr=3e-3",
            "group_size=16",
            "batch_groups=16",
            "eval_every=300",
        )  # fmt: skip
    )
    assert summary.eval_reward[0] <= 0.1
    assert summary.eval_reward[300] >= summary.eval_reward[0] + 0.25, summary.eval_reward
