"""Judge agreement on a labelled set: how often a judge scores the right answer above a wrong one.

The labelled set is built from a verifiable text task (``envs/text_tasks/tool_commands.yaml``): for each prompt
("goal: ... . command:") the task's own answer ``<tool> <argument>`` is labelled good (1) and two wrong commands
are labelled bad (0): the right argument with another tool, and the right tool with another argument. The labels
are the task's ground truth (the same one its verified GRPO reward uses), not a judge's opinion. No reference
answer is given to the judges: they see only the goal and the candidate command.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dspy_rl.judges.base import Judge, JudgeItem


class TaskItemLike(Protocol):
    prompt: str
    tool: str
    arg: str


@dataclass(frozen=True)
class Labelled:
    """One candidate response to a prompt with its label (1 = the task's answer, 0 = a wrong command)."""

    group: int
    item: JudgeItem
    label: int


def labelled_set(items: Sequence[TaskItemLike], limit: int = 200, seed: int = 0) -> list[Labelled]:
    """Up to ``limit`` prompts, each with its right command and two wrong ones (see the module docstring)."""
    rng = random.Random(seed)
    chosen = list(items)
    rng.shuffle(chosen)
    chosen = chosen[:limit]
    tools = sorted({it.tool for it in items})
    args_of: dict[str, list[str]] = {}
    for it in items:
        args_of.setdefault(it.tool, []).append(it.arg)
    out: list[Labelled] = []
    for g, it in enumerate(chosen):
        other_tool = rng.choice([t for t in tools if t != it.tool] or [it.tool])
        other_args = sorted({a for a in args_of[it.tool] if a != it.arg}) or sorted(
            {i.arg for i in items if i.arg != it.arg}
        )
        candidates = [(f"{it.tool} {it.arg}", 1), (f"{other_tool} {it.arg}", 0)]
        if other_args:
            candidates.append((f"{it.tool} {rng.choice(other_args)}", 0))
        out += [Labelled(g, JudgeItem(it.prompt, text), label) for text, label in candidates]
    return out


def auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Probability that a random good candidate outscores a random bad one (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    if not pos or not neg:
        raise ValueError("the labelled set needs both good and bad candidates")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def benchmark(judge: Judge, data: Sequence[Labelled], batch_size: int = 64) -> dict[str, Any]:
    """Scores every candidate; returns AUC, per-prompt top-1 agreement (the good one ranked strictly first) and
    throughput."""
    scores: list[float] = []
    start = time.perf_counter()
    for i in range(0, len(data), batch_size):
        scores += [s.score for s in judge.score_batch([d.item for d in data[i : i + batch_size]])]
    seconds = time.perf_counter() - start
    labels = [d.label for d in data]
    best: dict[int, list[tuple[float, int]]] = {}
    for d, s in zip(data, scores, strict=True):
        best.setdefault(d.group, []).append((s, d.label))
    top1 = sum(
        all(s_good > s for s, y in group if y == 0)
        for group in best.values()
        for s_good, yg in group
        if yg == 1
    )
    return {
        "judge": judge.name,
        "items": len(data),
        "prompts": len(best),
        "auc": round(auc(scores, labels), 4),
        "top1_agreement": round(top1 / len(best), 4),
        "items_per_s": round(len(data) / max(seconds, 1e-9), 1),
    }
