"""Structured config of the batched ToolEnv (Hydra group ``env/``), shared by training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

from dspy_rl.config import ConfigError, require
from dspy_rl.envs.reference import MAX_NUM_ENVS  # the Rust core refuses more the same way


@dataclass
class EnvConfig:
    suite: str = "default"
    """Task suite: a name in envs/suites (easy, default, hard) or a path to a suite file."""
    backend: str = "rust"
    """``rust`` (the batched Rust VecToolEnv), ``python`` (the pure-Python reference; slow), ``auto`` (Rust
    when the extension is built, else Python) or ``shell`` (ShellEnv: real sandboxed commands in real
    workspaces; needs a shell suite, e.g. ``env=shell``)."""
    num_envs: int = 512
    """Environments stepped together by each EnvRunner."""
    seed: int = 0
    """Base environment seed; runner ``i`` uses ``seed + 1000 * i`` plus an iteration offset on resume."""
    num_threads: int = 0
    """Rayon threads inside one VecToolEnv (0 = all cores, or an EnvRunner actor's reserved CPUs; 1 = serial)."""
    invalid_action: str = "error"
    """``error`` raises on a masked/out-of-range action, ``penalty`` rewards it negatively."""
    episode_len: int | None = None
    """Steps before an episode is truncated (null = the suite's ``episode_len``)."""
    actions: str | None = None
    """Tool allow-list, comma-separated (``git,make,pytest``; ``git`` also selects ``git_*``): other tools are
    masked out in every state where an allowed one is valid, and picking them is refused (null = all tools)."""

    def __post_init__(self) -> None:
        require(
            self.backend in ("rust", "python", "auto", "shell"),
            "env.backend",
            self.backend,
            "'rust', 'python', 'auto' or 'shell'",
        )
        require(
            1 <= self.num_envs <= MAX_NUM_ENVS,
            "env.num_envs",
            self.num_envs,
            f"an integer in [1, {MAX_NUM_ENVS}]",
        )
        require(
            self.episode_len is None or self.episode_len >= 1,
            "env.episode_len",
            self.episode_len,
            "an integer >= 1, or null for the suite's",
        )
        require(
            self.actions is None or any(a.strip() for a in str(self.actions).split(",")),
            "env.actions",
            self.actions,
            "comma-separated tool names such as git,make,pytest, or null",
        )
        require(self.num_threads >= 0, "env.num_threads", self.num_threads, "an integer >= 0")
        from dspy_rl.envs.suite import SuiteError, resolve_suite

        try:
            resolve_suite(self.suite)
        except SuiteError as exc:
            raise ConfigError(f"env.suite={self.suite!r} is not allowed: {exc}") from None
        require(
            self.invalid_action in ("error", "penalty"),
            "env.invalid_action",
            self.invalid_action,
            "'error' or 'penalty'",
        )
