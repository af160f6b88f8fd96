"""Run real commands in a Linux namespace sandbox (Rust: ``rust_env/src/sandbox``).

Each :class:`Sandbox` is one set of fresh namespaces (user, mount, pid, net, ipc, uts) around one workspace
directory, which is mounted read-write at ``/workspace`` (the cwd) and is the only writable host path. Inside:
read-only ``/usr``, ``/bin``, ``/lib*``, a generated ``/etc``, fresh ``/proc``, minimal ``/dev``, a private
``/tmp``; no network, no home directories, no host ``/tmp``; ``no_new_privs``, no capabilities, a seccomp
filter, Landlock where the kernel has it, rlimits and a wall-clock timeout per command. After every command
every process left in the sandbox is killed. The namespaces live as long as the :class:`Sandbox` (an episode),
so a command costs about a fork+exec; :func:`run_batch` runs many commands on a Rust thread pool.

If the kernel forbids any of it, :class:`SandboxUnavailable` says what is missing; nothing runs unsandboxed.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from dspy_rl import _rust_env

__all__ = [
    "ExecResult",
    "Sandbox",
    "SandboxLimits",
    "SandboxUnavailable",
    "check_support",
    "run_batch",
]

Command = list[str] | str


class SandboxUnavailable(RuntimeError):
    """The kernel or the caller's privileges do not allow the sandbox; the message names what is missing."""


@dataclass
class SandboxLimits:
    """Resource limits applied to every command of a sandbox."""

    timeout_s: float = 10.0
    """Wall-clock limit per command, seconds; when it passes, every process of the command is killed."""
    cpu_s: int = 10
    """RLIMIT_CPU: CPU seconds per process (SIGXCPU, then SIGKILL one second later)."""
    mem_mb: int = 1024
    """RLIMIT_AS: address space per process, MiB."""
    max_procs: int = 64
    """RLIMIT_NPROC: processes at once in the sandbox (each sandbox has its own user namespace)."""
    max_file_mb: int = 64
    """RLIMIT_FSIZE: largest file a command may write, MiB."""
    max_open_files: int = 256
    """RLIMIT_NOFILE: open files per process."""
    max_output_bytes: int = 65536
    """Bytes of stdout and of stderr kept each; longer output is cut and ends with a truncation marker."""
    tmp_mb: int = 64
    """Size of the sandbox's private /tmp (a tmpfs), MiB."""

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0):
            raise ValueError(f"SandboxLimits.timeout_s must be > 0, got {self.timeout_s}")
        for name in (
            "cpu_s",
            "mem_mb",
            "max_procs",
            "max_file_mb",
            "max_open_files",
            "max_output_bytes",
            "tmp_mb",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SandboxLimits.{name} must be a positive integer, got {value!r}")

    def _rust(self) -> tuple[int, int, int, int, int, int, int, int]:
        return (
            max(1, int(round(self.timeout_s * 1000))),
            self.cpu_s,
            self.mem_mb << 20,
            self.max_procs,
            self.max_file_mb << 20,
            self.max_open_files,
            self.max_output_bytes,
            self.tmp_mb << 20,
        )


@dataclass
class ExecResult:
    """What one command did."""

    exit_code: int | None
    """Exit status (None when a signal killed the command)."""
    stdout: str
    """Captured stdout (UTF-8, invalid bytes replaced), at most ``max_output_bytes`` plus a truncation marker."""
    stderr: str
    """Captured stderr, capped the same way."""
    truncated: bool
    """stdout or stderr was cut at the output limit."""
    timed_out: bool
    """The wall-clock timeout killed the command."""
    signal: int | None
    """Signal that killed the command (9 on timeout)."""
    wall_ms: float
    """Wall-clock time of the command seen from the host, ms."""
    reason: str | None = None
    """Why the command ended abnormally (timeout, CPU/file-size/output limit, sandbox failure); None if it exited."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def _from_rust(cls, t: tuple[Any, ...]) -> ExecResult:
        exit_code, signal, stdout, stderr, truncated, timed_out, wall_ms, reason = t
        return cls(exit_code, stdout, stderr, truncated, timed_out, signal, wall_ms, reason)


def _argv(cmd: Command) -> list[str]:
    if isinstance(cmd, str):
        return ["/bin/sh", "-c", cmd]
    if not isinstance(cmd, (list, tuple)) or not cmd or not all(isinstance(a, str) for a in cmd):
        raise ValueError(f"command must be a non-empty list of strings or a shell string, got {cmd!r}")
    return list(cmd)


def _env(env: dict[str, str] | None) -> list[tuple[str, str]] | None:
    if env is None:
        return None
    return [(str(k), str(v)) for k, v in env.items()]


def check_support() -> int:
    """Start a sandbox and run ``true`` in it. Returns the Landlock ABI in force (0 = none); raises
    :class:`SandboxUnavailable` naming what the kernel lacks."""
    try:
        return _rust_env.sandbox_check_support()
    except _rust_env.SandboxUnavailableError as exc:
        raise SandboxUnavailable(str(exc)) from None


class Sandbox:
    """One episode's sandbox around ``workspace``; :meth:`run` runs commands in it one at a time.

    Close it (or use it as a context manager) to kill everything in it; it is also closed when collected.
    """

    def __init__(
        self,
        workspace: str | os.PathLike[str],
        limits: SandboxLimits | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        try:
            self._proc = _rust_env.SandboxProcess(os.fspath(workspace), self.limits._rust(), _env(env))
        except _rust_env.SandboxUnavailableError as exc:
            raise SandboxUnavailable(str(exc)) from None

    @property
    def workspace(self) -> str:
        """Host path of the workspace (canonical)."""
        return self._proc.workspace

    @property
    def landlock_abi(self) -> int:
        """Landlock ABI in force (0 when the kernel has none)."""
        return self._proc.landlock_abi

    @property
    def closed(self) -> bool:
        return self._proc.closed

    def run(
        self, argv: Command, stdin: bytes | str | None = None, timeout_s: float | None = None
    ) -> ExecResult:
        """Run ``argv`` (a list, PATH-searched; a str runs under ``/bin/sh -c``) in ``/workspace``."""
        if isinstance(stdin, str):
            stdin = stdin.encode()
        timeout_ms = None
        if timeout_s is not None:
            if not (timeout_s > 0):
                raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
            timeout_ms = max(1, int(round(timeout_s * 1000)))
        return ExecResult._from_rust(self._proc.run(_argv(argv), stdin, timeout_ms))

    def close(self) -> None:
        """Kill every process in the sandbox and tear it down (idempotent)."""
        self._proc.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            proc.close()


def run_batch(
    jobs: list[tuple[Any, Command]] | list[tuple[Any, Command, bytes | None]],
    limits: SandboxLimits | None = None,
    workers: int = 0,
    env: dict[str, str] | None = None,
) -> list[ExecResult]:
    """Run ``(target, cmd[, stdin])`` jobs in parallel on a Rust thread pool; results in job order.

    A target is a workspace path (a fresh sandbox for that one command; ``limits``/``env`` apply) or a
    :class:`Sandbox` (the command runs in that episode's sandbox under its own limits). ``workers=0``: one
    per CPU (at least 2).
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    rust_jobs = []
    for i, job in enumerate(jobs):
        if not isinstance(job, tuple) or len(job) not in (2, 3):
            raise ValueError(f"job {i}: expected (workspace or Sandbox, command[, stdin]), got {job!r}")
        target, cmd = job[0], job[1]
        stdin = job[2] if len(job) == 3 else None
        if isinstance(stdin, str):
            stdin = stdin.encode()
        tgt = target._proc if isinstance(target, Sandbox) else os.fspath(target)
        rust_jobs.append((tgt, _argv(cmd), stdin))
    limits = limits or SandboxLimits()
    try:
        out = _rust_env.sandbox_run_batch(rust_jobs, limits._rust(), _env(env), workers)
    except _rust_env.SandboxUnavailableError as exc:
        raise SandboxUnavailable(str(exc)) from None
    return [ExecResult._from_rust(t) for t in out]
