"""The catalog's tools as real shell commands, and the facts each command's output shows.

Every tool of ``envs/catalog.json`` maps to a command template run in the episode's sandbox (cwd ``/workspace``;
tools that act on the project first ``cd`` into it). Arguments come from the workspace: the file candidates of
the task (``{arg}``), the bug's grep pattern and file name, its fix patch. A detector reads the command's exit
code and output and returns the catalog facts it shows; ShellEnv keeps only the tool's ``adds`` that are relevant
to the task, exactly like the simulator.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from dspy_rl.envs.shellenv.workspaces import GIT, WorkspaceSpec

PYTEST = "python3 -B -m pytest -q -p no:cacheprovider"
#: Marks the end of the here-document that carries a patch into ``patch`` (never occurs in a diff line).
_EOF = "DSPY_RL_PATCH_END"


@dataclass(frozen=True)
class CommandContext:
    """What a tool's command and detector need to know about one episode."""

    spec: WorkspaceSpec
    arg: str | None
    """The chosen file candidate (tools with ``takes_arg``), else ``None``."""


#: tool name -> (runs inside the project directory?, template). Placeholders are shell-quoted.
TEMPLATES: dict[str, tuple[bool, str]] = {
    "ls": (False, "ls -la"),
    "pwd": (False, "pwd"),
    "cd": (False, "cd {project} && pwd"),
    "cat": (True, "cat -- {arg}"),
    "grep": (True, "grep -rn --exclude-dir=.git -e {grep} ."),
    "find": (True, "find . -path ./.git -prune -o -name {find} -print"),
    "edit": (
        True,
        "patch --batch --forward --no-backup-if-mismatch -r - {arg} <<'" + _EOF + "'\n{patch}" + _EOF,
    ),
    "git_status": (True, GIT + " status --short --branch"),
    "git_diff": (True, GIT + " diff HEAD"),
    "git_commit": (
        True,
        GIT + " add -A && " + GIT + " commit -q -m 'Fix the reported bug' && " + GIT + " log --oneline -1",
    ),
    "make": (True, "make"),
    "pytest": (True, PYTEST),
    "pip_install": (True, "python3 -m pip install --no-input --retries 0 --timeout 3 pytest"),
    "curl": (False, "curl -sSf -m 5 -o /dev/null https://pypi.org/simple/"),
    "docker": (True, "docker build -t {project} ."),
}


def command(tool: str, ctx: CommandContext) -> str:
    """The shell command line that runs ``tool`` for this episode (cwd ``/workspace``)."""
    if tool not in TEMPLATES:
        raise KeyError(f"tool {tool!r} has no command template; known tools: {', '.join(TEMPLATES)}")
    in_project, template = TEMPLATES[tool]
    patch = ctx.spec.bug.patch if ctx.spec.bug.patch.endswith("\n") else ctx.spec.bug.patch + "\n"
    values = {
        "project": shlex.quote(ctx.spec.project),
        "arg": shlex.quote(ctx.arg or "."),
        "grep": shlex.quote(ctx.spec.bug.grep),
        "find": shlex.quote(ctx.spec.bug.find),
        "patch": patch,
    }
    cmd = template.format(**values)
    return f"cd {shlex.quote(ctx.spec.project)} && {cmd}" if in_project else cmd


def verify_command(template: str, spec: WorkspaceSpec) -> str:
    """A task's verifier (run in the project directory); ``{git}``, ``{pytest}``, ``{commits}`` are expanded."""
    cmd = (
        template.replace("{git}", GIT)
        .replace("{pytest}", PYTEST)
        .replace("{commits}", str(len(spec.commits)))
    )
    return f"cd {shlex.quote(spec.project)} && {cmd}"


_PATH_LINE = re.compile(r"^\./([^:\n]+)", re.MULTILINE)


def _paths(stdout: str) -> set[str]:
    return set(_PATH_LINE.findall(stdout))


Detector = Callable[[int | None, str, CommandContext], bool]

#: tool name -> (fact it can show, detector(exit_code, stdout, ctx) -> whether the output shows it).
DETECTORS: dict[str, tuple[str, Detector]] = {
    "ls": ("listed", lambda rc, out, c: rc == 0 and c.spec.project in out.split()),
    "pwd": ("oriented", lambda rc, out, c: rc == 0 and out.strip().startswith("/")),
    "cd": ("in_project", lambda rc, out, c: rc == 0 and out.strip().endswith("/" + c.spec.project)),
    "cat": ("file_read", lambda rc, out, c: rc == 0 and c.spec.bug.grep in out),
    "grep": ("located", lambda rc, out, c: rc == 0 and c.spec.bug.file in _paths(out)),
    "find": ("located", lambda rc, out, c: rc == 0 and c.spec.bug.file in _paths(out)),
    "edit": ("file_edited", lambda rc, out, c: rc == 0),
    "git_status": ("status_seen", lambda rc, out, c: rc == 0 and out.startswith("## ")),
    "git_diff": ("diff_reviewed", lambda rc, out, c: rc == 0 and "diff --git" in out),
    "git_commit": ("committed", lambda rc, out, c: rc == 0 and bool(out.strip())),
    "make": ("built", lambda rc, out, c: rc == 0),
    "pytest": ("tests_passed", lambda rc, out, c: rc == 0 and " passed" in out),
    "pip_install": ("deps_installed", lambda rc, out, c: rc == 0),
    "curl": ("net_fetched", lambda rc, out, c: rc == 0),
    "docker": ("image_built", lambda rc, out, c: rc == 0),
}


def detect(tool: str, exit_code: int | None, stdout: str, timed_out: bool, ctx: CommandContext) -> set[str]:
    """Catalog facts shown by ``tool``'s real result (nothing when it timed out)."""
    fact, check = DETECTORS[tool]
    if timed_out or exit_code is None:
        return set()
    return {fact} if check(exit_code, stdout, ctx) else set()
