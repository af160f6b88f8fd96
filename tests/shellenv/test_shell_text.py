"""The text view of ShellEnv (command in, capped output out, verified reward) and online text GRPO on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.envs.shellenv.text_env import ShellTextEnv

pytestmark = pytest.mark.usefixtures("sandbox_ok")


def test_multi_turn_episode_rewarded_only_by_the_verifier() -> None:
    with ShellTextEnv(2, "shell", max_turns=3, max_output_chars=300) as env:
        prompts = env.reset(["calc/fix_bug", "mkgen/build"])
        assert "calc" in prompts[0] and "divide(7, 2)" in prompts[0]
        s0, s1 = env.step(["grep -rn 'def divide' .", "make"])
        assert "calc/ops.py:16:def divide" in s0.observation and s0.reward == 0.0 and not s0.done
        assert s1.reward == 1.0 and s1.done and s1.verified  # `make -q` now says the build is up to date
        s0, s1 = env.step(["sed -i 's#a // b#a / b#' calc/ops.py", "make"])
        assert s1 is None  # a finished episode takes no more commands
        assert s0.reward == 1.0 and s0.done and "[exit 0]" in s0.observation  # the test suite passes now
        env.reset(["units/build", "units/fix_bug"])
        out = env.step(["pip install requests", "curl -sS https://pypi.org/ || echo offline"])
        assert out[0].reward == 0.0 and "[exit 0]" not in out[0].observation  # no network: pip fails
        assert "offline" in out[1].observation
        out = env.step(["yes | head -c 100000", None])
        assert out[0].observation.startswith("$ yes") and "[...]" in out[0].observation
        assert len(out[0].observation) < 400 and out[1] is None
        with pytest.raises(KeyError, match="unknown task"):
            env.reset(["nope", "calc/build"])
        with pytest.raises(ValueError, match="needs 2 commands"):
            env.step(["ls"])


def test_grpo_online_on_shell_tasks(tmp_path: Path) -> None:
    """`dspy-rl grpo train mode=online task=shell:shell`: completions run as sandboxed commands, verified rewards."""
    from dspy_rl.cli import main as cli_main

    rc = cli_main(
        [
            "grpo",
            "train",
            "mode=online",
            "task=shell:shell",
            "model=bow",
            "steps=2",
            "batch_groups=2",
            "group_size=3",
            "max_new_tokens=3",
            "lr=0.05",
            "logging.log_every=1",
            "logging.progress_bar=false",
            "logging.tensorboard=false",
            f"run_dir={tmp_path}",
        ]
    )
    assert rc == 0
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) == 2
    rewards = [r["reward_mean"] for r in rows if "reward_mean" in r]
    assert rewards and all(0.0 <= r <= 1.0 for r in rewards)
    assert (
        cli_main(
            ["grpo", "train", "mode=online", "task=shell:shell", "reward=judges", f"run_dir={tmp_path}/x"]
        )
        == 2
    )


def test_a_hanging_command_is_killed_and_said_so() -> None:
    from dspy_rl.shell.sandbox import SandboxLimits

    with ShellTextEnv(1, "shell", limits=SandboxLimits(timeout_s=1.0)) as env:
        env.reset(["roman/build"])
        (step,) = env.step(["sleep 30; make"])
        assert step.exec_result.timed_out and "[killed: timeout]" in step.observation
        assert step.reward == 0.0 and not step.done
