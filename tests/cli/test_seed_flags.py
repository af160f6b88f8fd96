"""The seeds' command names: flags map to their keys, retired ones are refused in one line, --actions restricts
the tool catalog in both env backends, --episode-len is an override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError, flags_to_overrides
from dspy_rl.envs import VecToolEnv, rust_available
from dspy_rl.envs.allowlist import AllowListVecEnv, allowed_tools
from dspy_rl.trainer import load_config, run_training

BACKENDS = ["python", "rust"] if rust_available() else ["python"]


def test_seed_flags_map_to_their_keys() -> None:
    cfg = load_config(
        "--workers 3 --n-envs 8 --episode-len 5 --actions git,make,pytest --batch-size 256 --mixed-precision "
        "--tensorboard false --wandb --wandb-project seeds --timeout 30 --environment easy --compile-model".split()
    )
    assert cfg.runtime.compile
    assert cfg.runtime.num_env_runners == 3 and cfg.env.num_envs == 8 and cfg.env.episode_len == 5
    assert cfg.env.actions == "git,make,pytest" and cfg.env.suite == "easy"
    assert cfg.algo.minibatch_size == 256 and cfg.runtime.mixed_precision
    assert not cfg.logging.tensorboard and cfg.logging.wandb and cfg.logging.wandb_project == "seeds"
    assert cfg.runtime.runner_timeout_s == 30
    from dspy_rl.cli.grpo import ALIASES as GRPO_ALIASES
    from dspy_rl.cli.grpo import RETIRED as GRPO_RETIRED
    from dspy_rl.config import compose, to_object
    from dspy_rl.grpo.config import GRPOTrainConfig

    argv = ["--gradient-checkpointing", "model=tiny-gpt2", "mode=online", "task=tool_commands"]
    grpo = to_object(compose("grpo", argv, GRPO_ALIASES, retired=GRPO_RETIRED), GRPOTrainConfig)
    assert grpo.gradient_checkpointing
    assert flags_to_overrides(["--trials", "4", "--max-concurrent", "2"], {"trials": "num_samples"}) == [
        "num_samples=4",
        "max_concurrent=2",
    ]
    assert flags_to_overrides(
        ["--kafka-bootstrap", "h:1"], {"kafka_bootstrap": "stream.bootstrap_servers"}
    ) == ["stream.bootstrap_servers=h:1"]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["train", "--reddb-url", "redis://x"], "store=PATH"),
        (["train", "--spark-master", "spark://x:7077"], "runtime.ray_address"),
        (["train", "--gpus", "2"], "runtime.num_learners"),
        (["train", "--framework", "torch"], "algo=ppo"),
        (["train", "--episodes", "10"], "--steps"),
        (["train", "--gradient-checkpointing"], "dspy-rl grpo train"),
        (["grpo", "train", "--compile-model"], "runtime.compile"),
        (["sweep", "--reddb-url", "x"], "SQLite"),
    ],
)
def test_retired_seed_flags_are_refused_in_one_line(argv: list[str], says: str, capsys) -> None:
    code = cli_main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0 and "no longer supported" in err and says in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_seed_values_fail_in_one_line(capsys) -> None:
    with pytest.raises(ConfigError, match=r"env.episode_len=0.*expected"):
        load_config(["--episode-len", "0"])
    assert cli_main(["train", "--workers", "many"]) != 0
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "num_env_runners" in err


@pytest.mark.parametrize("backend", BACKENDS)
def test_actions_allow_list_masks_and_refuses_other_tools(backend: str) -> None:
    env = AllowListVecEnv(VecToolEnv(32, "default", seed=3, backend=backend), "git,make,pytest")
    names = env.tool_names
    assert [names[i] for i in np.flatnonzero(env.allowed)] == [
        n for n in names if n.startswith("git_") or n in ("make", "pytest")
    ]
    env.reset(0)
    rng = np.random.default_rng(0)
    strict = 0
    for _ in range(60):
        mask = env.tool_mask
        rows = mask[:, env.allowed].any(axis=1)
        assert not mask[rows][:, ~env.allowed].any()  # not-listed tools masked wherever a listed one is valid
        strict += int(rows.sum())
        tools = np.array([rng.choice(np.flatnonzero(r)) for r in mask])
        args = np.array([rng.choice(np.flatnonzero(r)) if r.any() else 0 for r in env.arg_mask])
        env.step(tools, args)
    assert strict > 0
    # A pick of a masked-out tool never reaches the backend.
    env.reset(0)
    row = int(np.flatnonzero(env.tool_mask[:, env.allowed].any(axis=1))[0])
    tools = np.array([int(np.flatnonzero(r)[0]) for r in env.tool_mask])
    tools[row] = int(np.flatnonzero(~env.allowed)[0])
    with pytest.raises(ValueError, match="masks out"):
        env.step(tools, np.zeros(32, dtype=np.int64))


def test_unknown_action_names_the_tools() -> None:
    with pytest.raises(ValueError, match="'svn' is not a tool of this suite; tools: ls, pwd"):
        allowed_tools(["ls", "pwd"], "svn")


def test_training_with_seed_flags_runs(tmp_path: Path) -> None:
    backend = "rust" if rust_available() else "python"
    result = run_training(
        [
            f"env.backend={backend}",
            "--n-envs",
            "16",
            "--episode-len",
            "6",
            "--actions",
            "git,make,pytest,ls,cat",
            "--workers",
            "0",
            "algo.rollout_len=16",
            "algo.minibatch_size=128",
            "total_env_steps=1024",
            "logging.progress_bar=false",
            "logging.plot=false",
            "--tensorboard",
            "false",
            f"run_dir={tmp_path}",
        ]
    )
    assert result["env_steps"] == 1024


def test_episode_len_and_unknown_action_reach_the_env(capsys) -> None:
    from dspy_rl.runners.env_runner import make_env

    cfg = {"num_envs": 2, "suite": "default", "backend": BACKENDS[-1], "episode_len": 3}
    assert make_env(cfg, 0).episode_len == 3
    assert cli_main(["train", "--actions", "svn", "--workers", "0", "total_env_steps=64"]) != 0
    err = capsys.readouterr().err.strip()
    assert "'svn' is not a tool of this suite" in err and len(err.splitlines()) == 1


def test_eval_honours_actions_and_episode_len(capsys) -> None:
    argv = [
        "eval",
        "policy=random",
        "episodes=32",
        "--n-envs",
        "8",
        "--episode-len",
        "3",
        "--actions",
        "git,ls",
    ]
    assert cli_main(argv) == 0
    assert "mean length    3.00" in capsys.readouterr().out
    assert cli_main(["eval", "policy=oracle", "episodes=8", "--actions", "git"]) != 0
    err = capsys.readouterr().err.strip()
    assert "policy='oracle'" in err and len(err.splitlines()) == 1
