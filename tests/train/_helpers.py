"""Helpers shared by the training tests."""

from __future__ import annotations

import torch

from dspy_rl.envs import rust_available

BACKEND = "rust" if rust_available() else "python"

# A small, fast configuration: in-process runner unless a test asks for actors.
FAST = [
    f"env.backend={BACKEND}",
    "env.num_envs=64",
    "algo.rollout_len=32",
    "algo.minibatch_size=512",
    "logging.progress_bar=false",
    "logging.plot=false",
    "runtime.num_env_runners=0",
]


def random_batch(
    n: int, obs_dim: int, num_tools: int, num_args: int, seed: int = 0, grpo: bool = False
) -> dict[str, torch.Tensor]:
    """A learner batch of random observations, masks (action 0 always allowed) and targets: PPO's advantages and
    returns per policy, or GRPO's one advantage per sample with ``grpo``."""
    g = torch.Generator().manual_seed(seed)
    tool_mask = torch.rand(n, num_tools, generator=g) < 0.6
    arg_mask = torch.rand(n, num_args, generator=g) < 0.6
    tool_mask[:, 0] = arg_mask[:, 0] = True
    batch = {
        "obs": torch.randn(n, obs_dim, generator=g),
        "tool_mask": tool_mask,
        "arg_mask": arg_mask,
        "phase": (torch.rand(n, generator=g) < 0.8).to(torch.uint8),
        "tools": torch.zeros(n, dtype=torch.long),
        "args": torch.zeros(n, dtype=torch.long),
        "arg_active": torch.rand(n, generator=g) < 0.3,
        "logp_tool": -torch.rand(n, generator=g),
        "logp_arg": -torch.rand(n, generator=g),
    }
    if grpo:
        batch["adv"] = torch.randn(n, generator=g)
    else:
        batch |= {k: torch.randn(n, generator=g) for k in ("adv_tool", "ret_tool", "adv_arg", "ret_arg")}
    return batch
