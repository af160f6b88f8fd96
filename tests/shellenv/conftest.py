"""ShellEnv tests run real commands in the sandbox; where the kernel forbids it they are skipped with its reason."""

from __future__ import annotations

import pytest

from dspy_rl.envs import load_suite
from dspy_rl.envs.reference import SNAPSHOT_FORMAT, SNAPSHOT_MAGIC
from dspy_rl.envs.shellenv.env import WORKSPACE_MAGIC
from dspy_rl.envs.shellenv.workspaces import build_template


@pytest.fixture(scope="session")
def sandbox_ok() -> None:
    """Skip (naming what the kernel lacks) when the sandbox cannot run here; never run commands unsandboxed."""
    from dspy_rl.shell.sandbox import SandboxUnavailable, check_support

    try:
        check_support()
    except SandboxUnavailable as exc:
        pytest.skip(f"sandbox unavailable: {exc}")


def _sim_state(env, task: int, target: int, rng: int = 12345) -> bytes:
    """A simulator snapshot of the first step of ``task`` with ``target`` (valid in any backend)."""
    t = load_suite("shell").tasks[task]
    return SNAPSHOT_FORMAT.pack(
        SNAPSHOT_MAGIC,
        env.num_tools,
        env.num_tasks,
        env.episode_len,
        rng,
        t.start,
        task,
        target,
        0,
        0,
        0,
        0.0,
    )


def _shell_state(shell_env, task: int, target: int, rng: int = 12345) -> bytes:
    """The same start for ShellEnv: the simulator bytes followed by a fresh copy of the task's workspace."""
    pack = build_template(shell_env.shell.tasks[task].workspace, shell_env.limits)
    return _sim_state(shell_env, task, target, rng) + WORKSPACE_MAGIC + pack.to_bytes()


@pytest.fixture
def sim_state():
    """``sim_state(env, task, target)``: a simulator snapshot of the first step of ``task``."""
    return _sim_state


@pytest.fixture
def shell_state():
    """``shell_state(shell_env, task, target)``: the same start for ShellEnv, with a fresh workspace copy."""
    return _shell_state
