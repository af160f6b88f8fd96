"""Reward functions for online text GRPO: ``reward_fn(prompts, completions) -> list[float]``.

* ``rubric``: :class:`ToolCommandRubric`, the verifiable rubric of a tool-command task;
* ``judges``: the judge ensemble (``dspy_rl.judges.client.JudgeClient(**reward_kwargs).reward_fn``; start it
  with ``dspy-rl serve judges``);
* ``<module>:<attr>``: any importable callable with the signature above.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dspy_rl.envs.objectives import ObjectivesConfig
from dspy_rl.grpo.objectives import ObjectiveReward, judge_terms
from dspy_rl.grpo.tasks import TextTask

RewardFn = Callable[[Sequence[str], Sequence[str]], Sequence[float]]


class ToolCommandRubric:
    """Scores a completion against the task's answer ``<tool> <arg>``, with partial credit.

    ``0.35 * [first word is the tool] + 0.35 * [second word is the argument] + 0.3 * [exactly two words]``:
    1.0 only for the exact command; a right command followed by extra words gets 0.7; a prompt that is not part
    of the task is an error.
    """

    TOOL, ARG, FORMAT = 0.35, 0.35, 0.3

    def __init__(self, task: TextTask):
        self.task = task
        self._answers = task.answers_by_prompt()

    def score(self, prompt: str, completion: str) -> float:
        return sum(self.objective_terms(prompt, completion).values())

    def objective_terms(self, prompt: str, completion: str) -> dict[str, float]:
        """The score split into objectives: ``query_satisfaction`` (tool and argument), ``quality`` (format)."""
        item = self._answers.get(prompt)
        if item is None:
            raise KeyError(f"prompt {prompt!r} is not part of task {self.task.name!r}")
        words = completion.split()
        tool_ok = len(words) >= 1 and words[0] == item.tool
        arg_ok = len(words) >= 2 and words[1] == item.arg
        return {
            "query_satisfaction": self.TOOL * tool_ok + self.ARG * arg_ok,
            "quality": self.FORMAT * (len(words) == 2),
        }

    def terms(self, prompts: Sequence[str], completions: Sequence[str]) -> list[dict[str, float]]:
        """:meth:`objective_terms` of each (prompt, completion)."""
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return [self.objective_terms(p, c) for p, c in zip(prompts, completions, strict=True)]

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        return [self.score(p, c) for p, c in zip(prompts, completions, strict=True)]


def _import_attr(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"reward={spec!r}: expected 'rubric', 'judges' or '<module>:<callable>'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward={spec!r}: cannot import {module_name!r}: {exc}") from exc
    if not hasattr(module, attr):
        raise ValueError(f"reward={spec!r}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)


def resolve_reward_fn(
    spec: str,
    task: TextTask | None,
    kwargs: Mapping[str, Any] | None = None,
    objectives: ObjectivesConfig | None = None,
    objective_judges: Mapping[str, str] | None = None,
) -> RewardFn:
    """The reward function named by ``spec`` (see the module docstring). With ``objectives``, ``rubric`` and
    ``judges`` score through their objective terms (:class:`dspy_rl.grpo.objectives.ObjectiveReward`)."""
    kwargs = dict(kwargs or {})
    if spec == "rubric":
        if task is None:
            raise ValueError("reward=rubric needs a verifiable task (task=<name>)")
        rubric = ToolCommandRubric(task)
        return rubric if objectives is None else ObjectiveReward(rubric.terms, objectives)
    if spec == "judges":
        try:
            from dspy_rl.judges.client import JudgeClient
        except ImportError as exc:
            raise ValueError(
                f"reward=judges needs dspy_rl.judges.client, which failed to import: {exc}"
            ) from exc
        # kwargs go to JudgeClient: transport=handle|http, app_name, url, token, max_batch, timeout_s.
        client = JudgeClient(**kwargs)
        if objectives is None:
            return client.reward_fn
        return ObjectiveReward(judge_terms(client.judge, objective_judges or {}), objectives)
    fn = _import_attr(spec)
    if not callable(fn):
        raise ValueError(f"reward={spec!r} is not callable")
    return fn


def checked_rewards(fn: RewardFn, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
    """Call ``fn`` and check it returned one finite number per completion."""
    rewards = list(fn(prompts, completions))
    if len(rewards) != len(completions):
        raise ValueError(
            f"reward function returned {len(rewards)} rewards for {len(completions)} completions"
        )
    out = [float(r) for r in rewards]
    bad = [i for i, r in enumerate(out) if not math.isfinite(r)]
    if bad:
        raise ValueError(f"reward function returned non-finite rewards at positions {bad[:5]}")
    return out
