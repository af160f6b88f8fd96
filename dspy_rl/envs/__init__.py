"""ToolEnv: a batched simulator of a coding workspace in which an agent reaches a goal by calling tools.

``VecToolEnv(...)`` builds the batched env with the Rust backend (``dspy_rl._rust_env``, default) or the
pure-Python reference (``dspy_rl.envs.reference``); both have the same API (ENV_CONTRACT.md) and identical
dynamics (envs/README.md). ``backend="shell"`` builds ShellEnv (``dspy_rl.envs.shellenv.env``): the same API and
observation layout, with every tool run for real in a sandboxed copy of a real workspace (shell suites only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from dspy_rl.envs.reference import INVALID_ACTION_MODES, PyVecToolEnv
from dspy_rl.envs.suite import (
    RESULT_EMPTY,
    RESULT_FAILURE,
    RESULT_INVALID,
    RESULT_NONE,
    RESULT_SUCCESS,
    Suite,
    SuiteError,
    available_suites,
    load_suite,
    resolve_suite,
)

BACKENDS = ("rust", "python", "shell")

#: Names of the output buffers every backend updates in place (ENV_CONTRACT.md).
BUFFER_NAMES = (
    "obs",
    "tool_mask",
    "arg_mask",
    "phase",
    "rewards",
    "terminated",
    "truncated",
    "results",
    "episode_return",
    "episode_length",
    "episode_success",
)

__all__ = [
    "BACKENDS",
    "BUFFER_NAMES",
    "RESULT_EMPTY",
    "RESULT_FAILURE",
    "RESULT_INVALID",
    "RESULT_NONE",
    "RESULT_SUCCESS",
    "PyVecToolEnv",
    "Suite",
    "SuiteError",
    "VecEnv",
    "VecToolEnv",
    "available_suites",
    "load_suite",
    "resolve_suite",
    "rust_available",
]


class VecEnv(Protocol):
    """Structural type of both backends (see ENV_CONTRACT.md)."""

    num_envs: int
    obs_dim: int
    num_tools: int
    num_args: int
    episode_len: int
    tool_names: list[str]
    suite_name: str
    num_tasks: int
    obs: np.ndarray
    tool_mask: np.ndarray
    arg_mask: np.ndarray
    phase: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    results: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    episode_success: np.ndarray

    def reset(self, seed: int | None = None) -> None: ...
    def step(self, tools: np.ndarray, args: np.ndarray) -> None: ...
    def snapshot(self, i: int) -> bytes: ...
    def restore(self, i: int, state: bytes) -> None: ...
    def oracle_actions(self) -> tuple[np.ndarray, np.ndarray]: ...


def rust_available() -> bool:
    """Whether the compiled extension ``dspy_rl._rust_env`` can be imported."""
    try:
        from dspy_rl import _rust_env  # noqa: F401
    except ImportError:
        return False
    return True


def VecToolEnv(  # noqa: N802 - a factory named like the class it returns, as in the contract
    num_envs: int = 256,
    suite: str | Path = "default",
    seed: int = 0,
    num_threads: int = 0,
    invalid_action: str = "error",
    episode_len: int | None = None,
    backend: str = "rust",
) -> VecEnv:
    """Build a batched ToolEnv.

    Args:
        num_envs: number of independent envs stepped together.
        suite: a suite name in ``envs/suites`` (``easy``, ``default``, ``hard``) or a path to a suite JSON file.
        seed: RNG seed (env ``i`` draws from its own SplitMix64 stream derived from ``(seed, i)``).
        num_threads: Rust worker threads for large batches (0 = all cores, 1 = serial); ignored by "python".
        invalid_action: "error" (masked/out-of-range actions raise ValueError) or "penalty" (penalty reward,
            result 4, no state change).
        episode_len: steps before truncation; ``None`` uses the suite's ``episode_len``.
        backend: "rust" (compiled, fast), "python" (reference, slow) or "shell" (real commands in a sandbox;
            needs a shell suite such as ``suite="shell"``; ``num_threads`` = sandbox workers).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if invalid_action not in INVALID_ACTION_MODES:
        raise ValueError(f"invalid_action must be one of {INVALID_ACTION_MODES}, got {invalid_action!r}")
    path = resolve_suite(suite)
    if backend == "python":
        return PyVecToolEnv(num_envs, path, seed, num_threads, invalid_action, episode_len)
    if backend == "shell":
        from dspy_rl.envs.shellenv.env import ShellVecEnv

        return ShellVecEnv(num_envs, path, seed, num_threads, invalid_action, episode_len)
    try:
        from dspy_rl._rust_env import VecToolEnv as RustVecToolEnv
    except ImportError as exc:
        raise ImportError(
            "the Rust backend dspy_rl._rust_env is not built; run `maturin develop --release` in the repository "
            "root (or pass backend='python' for the slow reference)"
        ) from exc
    return RustVecToolEnv(
        num_envs,
        suite=str(path),
        seed=seed,
        num_threads=num_threads,
        invalid_action=invalid_action,
        episode_len=episode_len,
    )
