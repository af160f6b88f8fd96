"""ShellEnv: ToolEnv's contract with every tool run for real, in a sandbox, in a fresh copy of a real project.

``ShellVecEnv`` has the buffers, observation layout, masks, rewards, auto-reset, snapshots and oracle of the
symbolic backends (envs/README.md, ENV_CONTRACT.md), so trainers, eval and the Gymnasium/PettingZoo/RLlib
adapters take it unchanged (``VecToolEnv(..., backend="shell")``, ``env=shell``). What differs:

* each episode starts in a fresh copy of the task's workspace (``envs/workspaces/``) with its git history;
* a valid action runs the tool's command (``dspy_rl.envs.shellenv.tools``) in the sandbox: one ``run_batch`` call per
  ``step`` runs the commands of all envs in parallel on the Rust worker pool;
* the facts a step adds are those the command's exit code and output show (``tools.detect``), restricted to the
  tool's relevant ``adds`` like in the simulator; nothing is drawn at random (commands are deterministic; the
  shell suite gives the simulator success probabilities 0 or 1), though a uniform is still drawn where the
  simulator draws one so that both backends see the same tasks and targets for a seed;
* the argument candidates are the project's files; the episode's target (the file with the bug) sits at the
  candidate index the simulator would draw, so a policy reads it from the observation in both;
* an episode succeeds only when its goal facts hold AND the task's verifier command exits 0 in the workspace.

Commands never run outside the sandbox: without one, construction raises ``SandboxUnavailable``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dspy_rl.envs.reference import PyVecToolEnv
from dspy_rl.envs.shellenv.suite import ShellSuite, load_shell_suite
from dspy_rl.envs.shellenv.tools import CommandContext, command, detect, verify_command
from dspy_rl.envs.shellenv.workspaces import EpisodeDirs, Pack, build_template

logger = logging.getLogger(__name__)

#: Marks the workspace part of a ShellEnv snapshot (after the simulator's 57 bytes).
WORKSPACE_MAGIC = b"SHW1"
SIM_SNAPSHOT_SIZE = 57


def default_limits() -> Any:
    """Sandbox limits of a tool call: pytest and make of these projects take well under a second."""
    from dspy_rl.shell.sandbox import SandboxLimits

    return SandboxLimits(timeout_s=20.0, max_output_bytes=65536)


class ShellVecEnv(PyVecToolEnv):
    """``num_envs`` real episodes stepped together; the API of ``VecToolEnv`` (see the module docstring).

    Extra arguments: ``limits`` (``SandboxLimits`` of every command), ``workdir`` (where the per-env workspace
    copies live; ``None`` = the system temp dir). ``num_threads`` is the sandbox worker count (0 = all cores).
    After a step, ``last_commands[i]`` and ``last_outputs[i]`` (an ``ExecResult`` or ``None``) say what env ``i``
    ran and what came back. Call ``close()`` to delete the workspaces.
    """

    def __init__(
        self,
        num_envs: int,
        suite: str | Path = "shell",
        seed: int = 0,
        num_threads: int = 0,
        invalid_action: str = "error",
        episode_len: int | None = None,
        limits: Any = None,
        workdir: str | None = None,
    ) -> None:
        from dspy_rl.shell.sandbox import check_support

        check_support()  # raises SandboxUnavailable naming what the kernel lacks: never runs unsandboxed
        if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        self.shell: ShellSuite = load_shell_suite(suite)
        self.limits = limits if limits is not None else default_limits()
        packs: dict[str, Pack] = {}
        for t in self.shell.tasks:
            if t.workspace.name not in packs:
                packs[t.workspace.name] = build_template(t.workspace, self.limits)
        self._packs = [packs[t.workspace.name] for t in self.shell.tasks]
        n = int(num_envs)
        self._dirs = EpisodeDirs(n, workdir)
        self._cands: list[list[str]] = [[] for _ in range(n)]
        self._boxes: list[Any] = [None] * n
        self.last_commands: list[str | None] = [None] * n
        self.last_outputs: list[Any] = [None] * n
        self._detected: list[int] = [0] * n  # fact bits the current step's command showed, per env
        super().__init__(n, self.shell.suite.path, seed, num_threads, invalid_action, episode_len)
        self._fact_bit = {name: 1 << k for k, name in enumerate(self._suite.facts)}

    # -- episodes -----------------------------------------------------------------------------------------------

    def _arrange(self, i: int) -> None:
        """Candidate order of env ``i``: the project's files, the bug's file moved to the target index."""
        spec = self.shell.tasks[self._task[i]].workspace
        others = [c for c in spec.candidates if c != spec.bug.file]
        others.insert(self._target[i], spec.bug.file)
        self._cands[i] = others

    def _begin_episode(self, i: int) -> None:
        super()._begin_episode(i)
        self._arrange(i)
        self._fresh_workspace(i, self._packs[self._task[i]])

    def _fresh_workspace(self, i: int, pack: Pack) -> None:
        """A new copy of ``pack`` as env ``i``'s workspace, and a new sandbox (fresh namespaces, empty /tmp)."""
        from dspy_rl.shell.sandbox import Sandbox

        if self._boxes[i] is not None:
            self._boxes[i].close()
            self._boxes[i] = None
        path = self._dirs.reset(i, pack)
        self._boxes[i] = Sandbox(path, self.limits)
        self.last_commands[i] = None
        self.last_outputs[i] = None

    def candidates(self, i: int) -> list[str]:
        """File candidates of env ``i``'s episode in argument order (index = argument action)."""
        return list(self._cands[self._check_index(i)])

    def task_name(self, i: int) -> str:
        return self._suite.tasks[self._task[self._check_index(i)]].name

    def workspace_path(self, i: int) -> Path:
        """Host path of env ``i``'s workspace (``/workspace`` inside the sandbox)."""
        return self._dirs.path(self._check_index(i))

    def _context(self, i: int, tool: int, arg: int) -> CommandContext:
        spec = self.shell.tasks[self._task[i]].workspace
        takes = self._suite.tools[tool].takes_arg
        return CommandContext(spec, self._cands[i][arg] if takes else None)

    # -- stepping -----------------------------------------------------------------------------------------------

    def step(self, tools: np.ndarray, args: np.ndarray) -> None:
        """Run one tool call per env, all envs' commands in one parallel sandbox batch; updates every buffer."""
        from dspy_rl.shell.sandbox import run_batch

        tool_list, arg_list, valid = self._check_step(tools, args)
        runs = [i for i in range(self.num_envs) if valid[i]]
        contexts = {i: self._context(i, tool_list[i], arg_list[i]) for i in runs}
        cmds = {i: command(self.tool_names[tool_list[i]], contexts[i]) for i in runs}
        outputs = run_batch([(self._boxes[i], cmds[i]) for i in runs], self.limits, self.num_threads)
        by_env = dict(zip(runs, outputs, strict=True))

        pending = []
        for i in range(self.num_envs):
            res = by_env.get(i)
            self.last_commands[i] = cmds.get(i)
            self.last_outputs[i] = res
            detected = 0
            if res is not None:
                for fact in detect(
                    self.tool_names[tool_list[i]], res.exit_code, res.stdout, res.timed_out, contexts[i]
                ):
                    detected |= self._fact_bit[fact]
            self._detected[i] = detected
            pending.append(self._transition(i, tool_list[i], arg_list[i], valid[i]))

        reached = [i for i in range(self.num_envs) if pending[i][2]]
        verdicts: dict[int, bool] = {}
        if reached:
            jobs = [
                (
                    str(self._dirs.path(i)),
                    verify_command(
                        self.shell.tasks[self._task[i]].verify, self.shell.tasks[self._task[i]].workspace
                    ),
                )
                for i in reached
            ]
            for i, res in zip(reached, run_batch(jobs, self.limits, self.num_threads), strict=True):
                ok = res.exit_code == 0 and not res.timed_out
                verdicts[i] = ok
                if not ok:
                    logger.warning(
                        "env %d task %s: goal facts hold but the verifier failed (exit %s): %s",
                        i,
                        self.task_name(i),
                        res.exit_code,
                        (res.stderr or res.stdout).strip()[-300:],
                    )
        for i in range(self.num_envs):
            reward, result, goal = pending[i]
            self._finish(i, reward, result, goal and verdicts.get(i, False))

    def _gain(self, i: int, tool: int, new: int) -> int:
        """The facts the command showed (``detected``) among the ``new`` ones the call could add; the uniform the
        simulator's flaky roll draws is still drawn, so that both backends' streams stay in step."""
        self._uniform(i)
        return self._detected[i] & new

    # -- snapshots ----------------------------------------------------------------------------------------------

    def snapshot(self, i: int) -> bytes:
        """The simulator's 57-byte state followed by ``SHW1`` and a pack of the workspace's files."""
        head = super().snapshot(i)
        return head + WORKSPACE_MAGIC + Pack.read(self._dirs.path(i)).to_bytes()

    def restore(self, i: int, state: bytes) -> None:
        """Make env ``i`` continue from a ShellEnv snapshot: its state and a copy of its workspace files."""
        i = self._check_index(i)
        if not isinstance(state, bytes | bytearray | memoryview):
            raise TypeError(f"state must be bytes from snapshot(), got {type(state).__name__}")
        state = bytes(state)
        n = SIM_SNAPSHOT_SIZE
        if len(state) < n + 4 or state[n : n + 4] != WORKSPACE_MAGIC:
            raise ValueError(
                "state is not a ShellEnv snapshot (no workspace part; was it taken from a simulator?)"
            )
        pack = Pack.from_bytes(state[n + 4 :])
        super().restore(i, state[:n])
        self._arrange(i)
        self._fresh_workspace(i, pack)

    def close(self) -> None:
        """Tear down every env's sandbox and delete its workspace (idempotent)."""
        for i, box in enumerate(self._boxes):
            if box is not None:
                box.close()
                self._boxes[i] = None
        self._dirs.close()

    def __enter__(self) -> ShellVecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
