"""Verifiable text tasks (data in ``envs/text_tasks/``): prompts with a known answer, for online GRPO."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from dspy_rl import envs_dir


@dataclass(frozen=True)
class TaskItem:
    """One prompt and the answer a rubric checks against."""

    prompt: str
    tool: str
    arg: str

    @property
    def answer(self) -> str:
        return f"{self.tool} {self.arg}"


@dataclass(frozen=True)
class TextTask:
    """A named list of prompts with verifiable answers."""

    name: str
    items: tuple[TaskItem, ...]

    @property
    def prompts(self) -> list[str]:
        return [it.prompt for it in self.items]

    def answers_by_prompt(self) -> dict[str, TaskItem]:
        return {it.prompt: it for it in self.items}

    def texts(self) -> list[str]:
        """Every prompt and answer (to build a vocabulary that covers the task)."""
        return [t for it in self.items for t in (it.prompt, it.answer)]


def task_path(name_or_path: str) -> Path:
    """``envs/text_tasks/<name>.yaml`` for a task name, or the given path if it is a file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = envs_dir() / "text_tasks" / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(q.stem for q in (envs_dir() / "text_tasks").glob("*.yaml"))
    raise FileNotFoundError(
        f"unknown text task {name_or_path!r}; known tasks: {known} (or pass a path to a .yaml)"
    )


def load_task(name_or_path: str) -> TextTask:
    """Expand a tool-command task spec (tools x args x goal templates) into its prompts, in file order."""
    path = task_path(name_or_path)
    spec = yaml.safe_load(path.read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("tools"), dict) or not spec["tools"]:
        raise ValueError(f"{path}: expected a mapping with a non-empty 'tools' mapping")
    fmt = spec.get("prompt_format", "{goal}")
    items: list[TaskItem] = []
    for tool, entry in spec["tools"].items():
        args, goals = (entry or {}).get("args"), (entry or {}).get("goals")
        if not args or not goals:
            raise ValueError(f"{path}: tool {tool!r} needs non-empty 'args' and 'goals' lists")
        for arg in args:
            for goal in goals:
                if "{arg}" not in goal:
                    raise ValueError(f"{path}: goal template {goal!r} of tool {tool!r} must contain {{arg}}")
                items.append(TaskItem(fmt.format(goal=goal.format(arg=arg)), str(tool), str(arg)))
    if len({it.prompt for it in items}) != len(items):
        raise ValueError(f"{path}: two (tool, arg, goal) combinations produce the same prompt")
    return TextTask(str(spec.get("name", path.stem)), tuple(items))
