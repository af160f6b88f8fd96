"""Type stubs of the Rust extension ``dspy_rl._rust_env`` (built from rust_env/ by maturin)."""

from pathlib import Path

import numpy as np
import numpy.typing as npt

#: Length in bytes of a ``VecToolEnv.snapshot()``.
SNAPSHOT_LEN: int
#: Batches at least this large are stepped on the rayon pool (when ``num_threads != 1``).
PAR_THRESHOLD: int

class VecToolEnv:
    """Batched ToolEnv, Rust backend. API: ENV_CONTRACT.md; dynamics: envs/README.md."""

    num_envs: int
    obs_dim: int
    num_tools: int
    num_args: int
    episode_len: int
    tool_names: list[str]
    suite_name: str
    num_tasks: int
    invalid_action: str
    num_threads: int
    obs: npt.NDArray[np.float32]
    tool_mask: npt.NDArray[np.bool_]
    arg_mask: npt.NDArray[np.bool_]
    phase: npt.NDArray[np.uint8]
    rewards: npt.NDArray[np.float32]
    terminated: npt.NDArray[np.bool_]
    truncated: npt.NDArray[np.bool_]
    results: npt.NDArray[np.uint8]
    episode_return: npt.NDArray[np.float32]
    episode_length: npt.NDArray[np.int32]
    episode_success: npt.NDArray[np.bool_]

    def __init__(
        self,
        num_envs: int,
        suite: str = "default",
        seed: int | None = None,
        num_threads: int = 0,
        invalid_action: str = "error",
        episode_len: int | None = None,
        suites_dir: str | Path | None = None,
    ) -> None: ...
    def reset(self, seed: int | None = None) -> None: ...
    def step(
        self,
        tools: npt.NDArray[np.int64] | npt.NDArray[np.int32],
        args: npt.NDArray[np.int64] | npt.NDArray[np.int32],
    ) -> None: ...
    def snapshot(self, i: int) -> bytes: ...
    def restore(self, i: int, state: bytes | bytearray) -> None: ...
    def oracle_actions(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

# ---- namespace sandbox (rust_env/src/sandbox; Python API: dspy_rl/shell/sandbox.py) ----------------------

#: (exit_code, signal, stdout, stderr, truncated, timed_out, wall_ms, reason)
_Exec = tuple[int | None, int | None, str, str, bool, bool, float, str | None]
#: (timeout_ms, cpu_s, mem_bytes, max_procs, max_file_bytes, max_open_files, max_output_bytes, tmp_bytes)
_Limits = tuple[int, int, int, int, int, int, int, int]

class SandboxUnavailableError(RuntimeError):
    """The kernel or the caller's privileges do not allow the sandbox; the message names what is missing."""

class SandboxProcess:
    """One episode's namespace sandbox around a workspace directory; commands run in it one at a time."""

    def __new__(
        cls,
        workspace: str | Path,
        limits: _Limits | None = None,
        env: list[tuple[str, str]] | None = None,
    ) -> SandboxProcess: ...
    def run(self, argv: list[str], stdin: bytes | None = None, timeout_ms: int | None = None) -> _Exec: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def workspace(self) -> str: ...
    @property
    def landlock_abi(self) -> int: ...
    @property
    def pid(self) -> int: ...

def sandbox_run_batch(
    jobs: list[tuple[str | Path | SandboxProcess, list[str], bytes | None]],
    limits: _Limits | None = None,
    env: list[tuple[str, str]] | None = None,
    workers: int = 0,
) -> list[_Exec]: ...
def sandbox_check_support() -> int: ...
