"""Shell task suites: a symbolic suite (``envs/suites/*.json``) whose tasks also name a real workspace.

A shell suite is an ordinary ToolEnv suite (the Rust simulator trains on it as is: unknown keys are ignored)
whose every task adds ``workspace`` (a directory in ``envs/workspaces/``), ``verify`` (a shell command run in the
project that exits 0 when the goal is really reached: the tests pass, a commit exists, the build is up to date)
and ``instruction`` (what a text policy is told). Loading checks that the symbolic task matches its workspace:
``num_candidates`` equals the number of file candidates found in the project, and every catalog tool has a
command template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dspy_rl.envs.shellenv.tools import TEMPLATES
from dspy_rl.envs.shellenv.workspaces import WorkspaceError, WorkspaceSpec, load_workspace
from dspy_rl.envs.suite import Suite, SuiteError, load_suite, resolve_suite


@dataclass(frozen=True)
class ShellTask:
    """The real side of one task of the suite."""

    name: str
    workspace: WorkspaceSpec
    verify: str
    """Verifier template (``{git}``, ``{pytest}``, ``{commits}`` expanded by ``tools.verify_command``)."""
    instruction: str


@dataclass(frozen=True)
class ShellSuite:
    """A compiled symbolic suite and, task by task, its real workspace and verifier."""

    suite: Suite
    tasks: tuple[ShellTask, ...]

    @property
    def name(self) -> str:
        return self.suite.name


def load_shell_suite(suite: str | Path) -> ShellSuite:
    """Load a shell suite (name in ``envs/suites`` or path). Raises SuiteError naming the file and field."""
    path = resolve_suite(suite)
    sym = load_suite(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    missing = [t.name for t in sym.tools if t.name not in TEMPLATES]
    if missing:
        raise SuiteError(f"{path}: tools without a shell command template: {', '.join(missing)}")
    tasks = []
    cache: dict[str, WorkspaceSpec] = {}
    for j, (t, raw) in enumerate(zip(sym.tasks, doc["tasks"], strict=True)):
        where = f"tasks[{j}]"
        ws = raw.get("workspace")
        if not isinstance(ws, str) or not ws:
            raise SuiteError(
                f"{path}: field `{where}.workspace` is missing: {path.name} is a symbolic-only suite; a shell "
                "suite names a workspace in envs/workspaces/ for every task (e.g. env.suite=shell)"
            )
        try:
            spec = cache[ws] if ws in cache else load_workspace(ws)
        except WorkspaceError as exc:
            raise SuiteError(f"{path}: field `{where}.workspace`: {exc}") from exc
        cache[ws] = spec
        if t.num_candidates != len(spec.candidates):
            raise SuiteError(
                f"{path}: field `{where}.num_candidates` is {t.num_candidates} but workspace {ws} has "
                f"{len(spec.candidates)} file candidates ({', '.join(spec.candidates)})"
            )
        verify = raw.get("verify")
        if not isinstance(verify, str) or not verify.strip():
            raise SuiteError(f"{path}: field `{where}.verify` must be a non-empty shell command")
        instruction = raw.get("instruction", "")
        if not isinstance(instruction, str):
            raise SuiteError(f"{path}: field `{where}.instruction` must be a string")
        tasks.append(ShellTask(t.name, spec, verify, instruction))
    return ShellSuite(sym, tuple(tasks))
