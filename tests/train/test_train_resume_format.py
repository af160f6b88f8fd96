"""Resuming from a checkpoint whose optimizer state has the pre-flat-parameter layout fails up front, saying why."""

from __future__ import annotations

from pathlib import Path

import pytest

from dspy_rl.cli.config import ConfigError
from dspy_rl.train import Trainer, load_config
from dspy_rl.utils.checkpoint import save_checkpoint


def test_resume_from_a_per_tensor_optimizer_checkpoint_is_rejected_with_the_reason(tmp_path: Path) -> None:
    old_adam = {
        "state": {},
        "param_groups": [{"lr": 5e-3, "params": list(range(12))}],
    }  # one entry per tensor
    save_checkpoint(
        tmp_path,
        10,
        {"iteration": 10, "env_steps": 81920, "learner": {"optimizers": {p: old_adam for p in "ABC"}}},
    )
    with pytest.raises(ConfigError, match="older dspy-rl .*start a new run"):
        Trainer(load_config([f"resume={tmp_path}", "runtime.num_env_runners=0"]))
