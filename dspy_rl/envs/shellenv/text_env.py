"""The text view of ShellEnv for LLM policies: a command string in, capped output out, reward from the verifier.

``ShellTextEnv(num_envs)`` holds ``num_envs`` episodes side by side. ``reset(tasks)`` gives each a fresh copy of
its task's workspace and sandbox and returns the prompts; ``step(commands)`` runs one command per episode (all in
one parallel sandbox batch, cwd = the project directory), then each task's verifier, and returns what the
command printed (capped), the reward (1.0 on the turn the verifier first passes, else 0.0: verified rewards only)
and whether the episode is over (verified, or ``max_turns`` reached). Multi-turn: keep calling ``step``.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspy_rl.envs.shellenv.suite import ShellSuite, ShellTask, load_shell_suite
from dspy_rl.envs.shellenv.tools import verify_command
from dspy_rl.envs.shellenv.workspaces import EpisodeDirs, Pack, build_template

PROMPT = (
    "You are in a shell in /workspace/{project}, a git repository ({description}).\n"
    "Task: {instruction}\n"
    "Answer with one shell command per turn."
)


@dataclass
class TextStep:
    """What one command did in one episode."""

    observation: str
    """``$ command`` then its stdout and stderr and ``[exit N]``, cut to ``max_output_chars`` (the tail kept)."""
    reward: float
    """1.0 on the turn the task's verifier first passes, else 0.0."""
    done: bool
    """The verifier passed or ``max_turns`` commands ran."""
    verified: bool
    exec_result: Any
    """The sandbox's ``ExecResult`` of the command."""


def render(command: str, res: Any, max_chars: int) -> str:
    """The transcript of one command, its output capped to the last ``max_chars`` characters."""
    body = res.stdout + res.stderr
    if res.timed_out:
        body += "\n[killed: timeout]"
    elif res.exit_code is None:
        body += f"\n[killed: {res.reason or f'signal {res.signal}'}]"
    if len(body) > max_chars:
        body = "[...]" + body[-max_chars:]
    status = f"[exit {res.exit_code}]" if res.exit_code is not None else ""
    return f"$ {command}\n{body.rstrip()}\n{status}".rstrip()


class ShellTextEnv:
    """``num_envs`` multi-turn text episodes on a shell suite's tasks (see the module docstring)."""

    def __init__(
        self,
        num_envs: int = 1,
        suite: str | Path = "shell",
        max_turns: int = 8,
        max_output_chars: int = 2000,
        limits: Any = None,
        workdir: str | None = None,
        workers: int = 0,
    ) -> None:
        from dspy_rl.envs.shellenv.env import default_limits
        from dspy_rl.shell.sandbox import check_support

        check_support()
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if max_turns < 1 or max_output_chars < 1:
            raise ValueError("max_turns and max_output_chars must be >= 1")
        self.shell: ShellSuite = load_shell_suite(suite)
        self.num_envs = num_envs
        self.max_turns = max_turns
        self.max_output_chars = max_output_chars
        self.workers = workers
        self.limits = limits if limits is not None else default_limits()
        self._packs: dict[str, Pack] = {}
        self._dirs = EpisodeDirs(num_envs, workdir)
        self._boxes: list[Any] = [None] * num_envs
        self._tasks: list[ShellTask | None] = [None] * num_envs
        self.turns = [0] * num_envs
        self.done = [True] * num_envs

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.shell.tasks]

    def task_index(self, task: int | str) -> int:
        """Index of a task given by index or name."""
        if isinstance(task, str):
            if task not in self.task_names:
                raise KeyError(f"unknown task {task!r}; tasks: {', '.join(self.task_names)}")
            return self.task_names.index(task)
        if not 0 <= task < len(self.shell.tasks):
            raise IndexError(f"task index {task} out of range [0, {len(self.shell.tasks)})")
        return task

    def prompt(self, task: int | str) -> str:
        t = self.shell.tasks[self.task_index(task)]
        ws = t.workspace
        return PROMPT.format(project=ws.project, description=ws.description, instruction=t.instruction)

    def reset(self, tasks: Sequence[int | str]) -> list[str]:
        """Start episode ``i`` on ``tasks[i]`` in a fresh workspace copy and sandbox; returns the prompts."""
        from dspy_rl.shell.sandbox import Sandbox

        if len(tasks) != self.num_envs:
            raise ValueError(f"reset needs {self.num_envs} tasks (one per episode), got {len(tasks)}")
        prompts = []
        for i, task in enumerate(tasks):
            t = self.shell.tasks[self.task_index(task)]
            if t.workspace.name not in self._packs:
                self._packs[t.workspace.name] = build_template(t.workspace, self.limits)
            if self._boxes[i] is not None:
                self._boxes[i].close()
            path = self._dirs.reset(i, self._packs[t.workspace.name])
            self._boxes[i] = Sandbox(path, self.limits)
            self._tasks[i] = t
            self.turns[i] = 0
            self.done[i] = False
            prompts.append(self.prompt(task))
        return prompts

    def step(self, commands: Sequence[str | None]) -> list[TextStep | None]:
        """Run ``commands[i]`` in episode ``i`` (``None`` skips it; so do finished episodes)."""
        from dspy_rl.shell.sandbox import run_batch

        if len(commands) != self.num_envs:
            raise ValueError(f"step needs {self.num_envs} commands (None to skip one), got {len(commands)}")
        live = [i for i, c in enumerate(commands) if c is not None and not self.done[i]]
        for i in live:
            if not isinstance(commands[i], str):
                raise TypeError(f"command {i} must be a string, got {type(commands[i]).__name__}")
        jobs = []
        for i in live:
            task = self._tasks[i]
            assert task is not None
            jobs.append(
                (self._boxes[i], f"cd {shlex.quote(task.workspace.project)} || exit 1\n{commands[i]}")
            )
        results = run_batch(jobs, self.limits, self.workers) if jobs else []
        checks = (
            run_batch(
                [
                    (self._boxes[i], verify_command(self._tasks[i].verify, self._tasks[i].workspace))
                    for i in live
                ],  # type: ignore[union-attr]
                self.limits,
                self.workers,
            )
            if live
            else []
        )
        out: list[TextStep | None] = [None] * self.num_envs
        for i, res, check in zip(live, results, checks, strict=True):
            self.turns[i] += 1
            verified = check.exit_code == 0 and not check.timed_out
            self.done[i] = verified or self.turns[i] >= self.max_turns
            out[i] = TextStep(
                render(str(commands[i]), res, self.max_output_chars),
                1.0 if verified else 0.0,
                self.done[i],
                verified,
                res,
            )
        return out

    def close(self) -> None:
        """Tear down every sandbox and delete the workspaces (idempotent)."""
        for i, box in enumerate(self._boxes):
            if box is not None:
                box.close()
                self._boxes[i] = None
        self._dirs.close()

    def __enter__(self) -> ShellTextEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
