"""Grouped JSONL for offline GRPO: loading, line-by-line validation, and a resumable batch sampler.

One group a line::

    {"prompt": "...", "candidates": [{"text": "...", "reward": 0.5}, ...], "meta": {...}}

``meta`` is optional (an object). Unknown top-level or candidate keys are errors, so a misspelt field is not silently
ignored. Groups with fewer than two candidates or all-equal rewards carry no signal: they are counted and left out.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

TOP_KEYS = {"prompt", "candidates", "meta"}
CANDIDATE_KEYS = {"text", "reward"}


class DatasetError(ValueError):
    """The dataset file is missing, has a bad line under ``on_bad_line=fail``, or holds no trainable group."""


@dataclass(frozen=True)
class Candidate:
    text: str
    reward: float


@dataclass(frozen=True)
class Group:
    """A validated group: a prompt, its scored candidates, free-form meta, and the 1-based source line."""

    prompt: str
    candidates: tuple[Candidate, ...]
    meta: dict[str, Any]
    line: int

    @property
    def has_signal(self) -> bool:
        return len(self.candidates) >= 2 and len({c.reward for c in self.candidates}) > 1


@dataclass(frozen=True)
class BadLine:
    line: int
    reason: str


@dataclass
class DatasetReport:
    """What loading found: counts of lines, valid groups, bad lines (with reasons) and groups without signal."""

    path: str
    lines: int = 0
    groups: int = 0
    bad: list[BadLine] = field(default_factory=list)
    too_few_candidates: int = 0
    equal_rewards: int = 0

    @property
    def trainable(self) -> int:
        return self.groups - self.too_few_candidates - self.equal_rewards

    def summary(self) -> str:
        return (
            f"{self.path}: {self.lines} lines, {self.groups} valid groups ({self.trainable} trainable), "
            f"{len(self.bad)} bad lines skipped, {self.too_few_candidates} with <2 candidates, "
            f"{self.equal_rewards} with all-equal rewards"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "lines": self.lines,
            "groups": self.groups,
            "trainable": self.trainable,
            "bad_lines": len(self.bad),
            "too_few_candidates": self.too_few_candidates,
            "equal_rewards": self.equal_rewards,
        }


def parse_group(text: str, line: int) -> Group:
    """Parse and validate one JSONL line; raises ``ValueError`` with the reason."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown}; allowed: prompt, candidates, meta")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("'prompt' must be a non-empty string")
    cands = obj.get("candidates")
    if not isinstance(cands, list):
        raise ValueError("'candidates' must be a list of {text, reward} objects")
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"'meta' must be an object, got {type(meta).__name__}")
    parsed = []
    for i, c in enumerate(cands):
        if not isinstance(c, dict):
            raise ValueError(f"candidates[{i}] must be an object with 'text' and 'reward'")
        extra = sorted(set(c) - CANDIDATE_KEYS)
        if extra:
            raise ValueError(f"candidates[{i}] has unknown keys {extra}; allowed: text, reward")
        if not isinstance(c.get("text"), str):
            raise ValueError(f"candidates[{i}].text must be a string")
        r = c.get("reward")
        if isinstance(r, bool) or not isinstance(r, (int, float)):
            raise ValueError(f"candidates[{i}].reward must be a number, got {r!r}")
        if not math.isfinite(r):
            raise ValueError(f"candidates[{i}].reward must be finite, got {r!r}")
        parsed.append(Candidate(c["text"], float(r)))
    return Group(prompt, tuple(parsed), meta, line)


def load_groups(
    path: str | Path, on_bad_line: Literal["skip", "fail"] = "skip"
) -> tuple[list[Group], DatasetReport]:
    """Read every line of ``path``; returns the trainable groups and a report.

    Bad lines are logged with their line number and reason, then skipped (``skip``) or raised (``fail``).
    Blank lines are ignored.
    """
    if on_bad_line not in ("skip", "fail"):
        raise ValueError(f"on_bad_line must be 'skip' or 'fail', got {on_bad_line!r}")
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"dataset {str(p)!r} does not exist or is not a file")
    report = DatasetReport(str(p))
    groups: list[Group] = []
    with p.open(encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            report.lines = lineno
            if not raw.strip():
                continue
            try:
                g = parse_group(raw, lineno)
            except ValueError as exc:
                msg = f"{p}:{lineno}: {exc}"
                if on_bad_line == "fail":
                    raise DatasetError(
                        f"{msg} (on_bad_line=fail; use on_bad_line=skip to skip bad lines)"
                    ) from None
                logger.warning("skipping bad line %s", msg)
                report.bad.append(BadLine(lineno, str(exc)))
                continue
            report.groups += 1
            if len(g.candidates) < 2:
                report.too_few_candidates += 1
            elif not g.has_signal:
                report.equal_rewards += 1
            else:
                groups.append(g)
    logger.info("%s", report.summary())
    if not groups:
        raise DatasetError(f"no trainable group in {p}: {report.summary()}")
    return groups, report


class GroupSampler:
    """Batches of items in a fresh seeded permutation per epoch; its whole state is one integer (``consumed``)."""

    def __init__(self, n: int, batch_size: int, seed: int, consumed: int = 0):
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.consumed = n, batch_size, seed, consumed

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next_batch(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.batch_size:
            epoch, pos = divmod(self.consumed, self.n)
            take = min(self.batch_size - len(out), self.n - pos)
            out.extend(int(i) for i in self._order(epoch)[pos : pos + take])
            self.consumed += take
        return out


def flatten_groups(groups: Sequence[Group]) -> tuple[list[str], list[str], list[float], list[int]]:
    """(prompts, texts, rewards, group ids) with one entry per candidate."""
    prompts, texts, rewards, gids = [], [], [], []
    for gi, g in enumerate(groups):
        for c in g.candidates:
            prompts.append(g.prompt)
            texts.append(c.text)
            rewards.append(c.reward)
            gids.append(gi)
    return prompts, texts, rewards, gids
