"""Online text GRPO on ShellEnv (``dspy-rl grpo train mode=online task=shell:<suite>``).

Every task of the shell suite becomes a prompt (its instruction and project); a completion is run as the
episode's command in a fresh sandboxed copy of the workspace (one turn of :class:`ShellTextEnv`, the G*B
completions of a batch in one parallel sandbox batch), and its reward is 1.0 when the task's verifier then
passes, else 0.0: verified rewards only, no judge and no partial credit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dspy_rl.envs.shellenv.text_env import ShellTextEnv
from dspy_rl.envs.shellenv.tools import TEMPLATES
from dspy_rl.grpo.tasks import TaskItem, TextTask

PREFIX = "shell:"


@dataclass(frozen=True)
class ShellTextTask(TextTask):
    """The prompts of a shell suite; ``suite`` is what the verifier reward runs them on."""

    suite: str = "shell"

    def texts(self) -> list[str]:
        """Prompts plus the command vocabulary of the catalog's tools (what a word-level policy can emit)."""
        words = sorted({w for _, t in TEMPLATES.values() for w in t.split() if w.isascii() and "{" not in w})
        return [it.prompt for it in self.items] + [" ".join(words)]


def is_shell_task(spec: str) -> bool:
    return spec.startswith(PREFIX)


def load_shell_text_task(spec: str) -> ShellTextTask:
    """``shell:<suite>`` -> one prompt per task of the shell suite (a name in envs/suites or a path)."""
    suite = spec[len(PREFIX) :] if is_shell_task(spec) else spec
    if not suite:
        raise ValueError("task=shell:<suite> needs a suite name, e.g. task=shell:shell")
    env = ShellTextEnv(1, suite)
    try:
        items = tuple(TaskItem(env.prompt(j), "shell", name) for j, name in enumerate(env.task_names))
    finally:
        env.close()
    return ShellTextTask(f"shell:{env.shell.name}", items, suite)


class ShellVerifierReward:
    """Reward of a completion = does the task's verifier pass after running it as the command (1.0 / 0.0)."""

    def __init__(self, task: ShellTextTask, max_turns: int = 1) -> None:
        self.task = task
        self.max_turns = max_turns
        self._by_prompt = {it.prompt: it.arg for it in task.items}
        self._envs: dict[int, ShellTextEnv] = {}

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        unknown = [p for p in prompts if p not in self._by_prompt]
        if unknown:
            raise KeyError(f"prompt {unknown[0]!r} is not part of task {self.task.name!r}")
        n = len(prompts)
        env = self._envs.get(n)
        if env is None:
            env = self._envs[n] = ShellTextEnv(n, self.task.suite, max_turns=self.max_turns)
        env.reset([self._by_prompt[p] for p in prompts])
        steps = env.step([c.strip() or "true" for c in completions])
        return [s.reward if s is not None else 0.0 for s in steps]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
