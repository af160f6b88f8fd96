"""A `dspy-rl train`-format run directory holding a (randomly initialized) policy for the default suite."""

from __future__ import annotations

from pathlib import Path

import torch


def write_run_dir(run_dir: Path, suite: str = "default", seed: int = 0) -> Path:
    from dspy_rl.envs.suite import load_suite
    from dspy_rl.models.policy import MultiPolicy
    from dspy_rl.utils.checkpoint import FORMAT_VERSION, save_checkpoint

    s = load_suite(suite)
    torch.manual_seed(seed)
    policy = MultiPolicy(s.obs_dim, len(s.tools), s.num_args, hidden=32)
    with torch.no_grad():  # an untrained net is nearly uniform; give it clear (arbitrary) preferences
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    save_checkpoint(
        run_dir,
        1,
        {
            "format_version": FORMAT_VERSION,
            "iteration": 1,
            "config": {"env": {"suite": suite}},
            "model_spec": policy.spec(),
            "learner": {"model": policy.state_dict()},
        },
    )
    return run_dir
