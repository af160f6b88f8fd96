"""Helpers shared by the training tests."""

from __future__ import annotations

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
