"""Mine GRPO groups from the trace store: ``dspy-rl grpo mine --hours 48 --out groups.jsonl``.

A GRPO group is several answers to the *same* question with their rewards. The miner reads the spans of the
last ``hours`` and builds groups at three levels of the agent's work, one file each
(``groups.jsonl`` → ``groups.global.jsonl``, ``groups.signature.jsonl``, ``groups.patch.jsonl``):

* ``global``: whole episodes. Prompt = the trace's task, text = its final answer, reward = the trace's total
  reward (sum of its reward spans). Grouped by task.
* ``signature``: single model calls. Prompt span of one DSPy signature; text = its response; reward = the reward
  spans that target it. Grouped by (signature, context hash, prompt): the same module asked the same thing in
  the same context.
* ``patch``: code edits. Like ``signature`` but only calls that proposed a patch; text = the patch.

One line per group: ``{"prompt", "candidates": [{"text", "reward"}], "meta"}``, where meta holds the level,
signature name, context hash, prompt hash, and the traces/agents the candidates came from. Identical texts in
a group are merged (mean reward). Groups with fewer than ``min_candidates`` are dropped (counted), as are
all-equal-reward groups when ``drop_equal_rewards``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require
from dspy_rl.traces.spans import Span
from dspy_rl.traces.store import TRACE_END, TraceStore
from dspy_rl.utils.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

LEVELS = ("global", "signature", "patch")


@dataclass
class MineConfig:
    """Settings of ``dspy-rl grpo mine`` (``conf/mine.yaml``)."""

    db: str = "runs/traces.db"
    """SQLite trace store to read."""
    out: str = "groups.jsonl"
    """Output name; level files are written beside it as ``<stem>.<level>.jsonl``."""
    hours: float | None = 48.0
    """Look back this many hours from ``until`` (null: all stored traces)."""
    until: float | None = None
    """End of the window, unix seconds (null: now)."""
    agent_id: str | None = None
    """Only this agent's spans (null: all agents)."""
    levels: list[str] = field(default_factory=lambda: list(LEVELS))
    """Which levels to write: any of global, signature, patch."""
    min_candidates: int = 2
    """Drop groups with fewer distinct candidates (GRPO compares within a group)."""
    max_candidates: int = 16
    """Keep at most this many candidates per group (the most recent)."""
    drop_equal_rewards: bool = False
    """Drop groups whose candidates all have the same reward (no learning signal)."""

    def __post_init__(self) -> None:
        require(bool(self.db), "db", self.db, "a path to the SQLite trace store")
        require(bool(self.out), "out", self.out, "an output path such as groups.jsonl")
        require(self.hours is None or self.hours > 0, "hours", self.hours, "null or a number of hours > 0")
        bad = [lv for lv in self.levels if lv not in LEVELS]
        require(not bad and bool(self.levels), "levels", self.levels, f"a non-empty subset of {list(LEVELS)}")
        require(self.min_candidates >= 2, "min_candidates", self.min_candidates, "an int >= 2")
        require(
            self.max_candidates >= self.min_candidates,
            "max_candidates",
            self.max_candidates,
            f"an int >= min_candidates ({self.min_candidates})",
        )


ConfigStore.instance().store(name="mine_schema", node=MineConfig)


def context_hash(context: Any) -> str:
    """Stable 16-hex-char hash of a JSON-able context (key order does not matter)."""
    text = json.dumps(context, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _Group:
    prompt: str
    meta: dict[str, Any]
    # text -> [reward sum, count, latest ts]
    texts: dict[str, list[float]] = field(default_factory=dict)
    traces: set[str] = field(default_factory=set)
    agents: set[str] = field(default_factory=set)

    def add(self, text: str, reward: float, ts: float, trace_id: str, agent_id: str) -> None:
        entry = self.texts.setdefault(text, [0.0, 0, ts])
        entry[0] += reward
        entry[1] += 1
        entry[2] = max(entry[2], ts)
        self.traces.add(trace_id)
        self.agents.add(agent_id)

    def to_line(self, max_candidates: int) -> dict[str, Any]:
        recent = sorted(self.texts.items(), key=lambda kv: kv[1][2])[-max_candidates:]
        candidates = [{"text": text, "reward": total / count} for text, (total, count, _) in recent]
        meta = {
            **self.meta,
            "num_samples": int(sum(count for _, count, _ in self.texts.values())),
            "trace_ids": sorted(self.traces)[:64],
            "agents": sorted(self.agents),
        }
        return {"prompt": self.prompt, "candidates": candidates, "meta": meta}


@dataclass
class MineReport:
    """What one mining run found, per level."""

    window: tuple[float | None, float]
    spans: int = 0
    traces: int = 0
    unrewarded_actions: int = 0
    written: dict[str, int] = field(default_factory=dict)
    too_few_candidates: dict[str, int] = field(default_factory=dict)
    equal_rewards: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def level_path(out: str | Path, level: str) -> Path:
    """``groups.jsonl`` + ``signature`` → ``groups.signature.jsonl``."""
    out = Path(out)
    suffix = out.suffix or ".jsonl"
    return out.with_name(f"{out.stem if out.suffix else out.name}.{level}{suffix}")


def build_groups(spans: Iterable[Span]) -> tuple[dict[str, dict[tuple, _Group]], dict[str, int]]:
    """Group the spans of a window into the three levels; returns (groups per level, counters)."""
    actions: list[Span] = []
    ends: dict[str, Span] = {}
    reward_of: dict[str, float] = defaultdict(float)
    trace_reward: dict[str, float] = defaultdict(float)
    trace_agent: dict[str, str] = {}
    trace_ts: dict[str, float] = {}
    first_prompt: dict[str, Span] = {}
    last_prompt: dict[str, Span] = {}
    n = 0
    for span in spans:
        n += 1
        trace_agent.setdefault(span.trace_id, span.agent_id)
        trace_ts[span.trace_id] = max(trace_ts.get(span.trace_id, span.start_ts), span.start_ts)
        if span.kind == "prompt":
            actions.append(span)
            first_prompt.setdefault(span.trace_id, span)
            last_prompt[span.trace_id] = span
        elif span.kind == "reward" and span.reward is not None:
            trace_reward[span.trace_id] += span.reward
            target = span.attributes.get("target") or span.parent_id
            if isinstance(target, str):
                reward_of[target] += span.reward
        elif span.kind == "content" and span.name == TRACE_END:
            ends[span.trace_id] = span
    levels: dict[str, dict[tuple, _Group]] = {level: {} for level in LEVELS}
    unrewarded = 0
    for span in actions:
        if span.span_id not in reward_of:
            unrewarded += 1
            continue
        prompt = str(span.attributes.get("prompt", ""))
        ctx = context_hash(span.attributes.get("context", {}))
        reward = reward_of[span.span_id]
        base = {"signature": span.name, "context_hash": ctx, "prompt_hash": context_hash(prompt)}
        key = (span.name, ctx, prompt)
        group = levels["signature"].setdefault(key, _Group(prompt, {"level": "signature", **base}))
        group.add(
            str(span.attributes.get("response", "")), reward, span.start_ts, span.trace_id, span.agent_id
        )
        patch = span.attributes.get("patch")
        if isinstance(patch, str) and patch:
            group = levels["patch"].setdefault(key, _Group(prompt, {"level": "patch", **base}))
            group.add(patch, reward, span.start_ts, span.trace_id, span.agent_id)
    for trace_id in trace_reward.keys() | ends.keys():
        end = ends.get(trace_id)
        first = first_prompt.get(trace_id)
        task = end.attributes.get("task") if end is not None else None
        if not task and first is not None:
            task = first.attributes.get("prompt")
        answer = end.attributes.get("answer") if end is not None else None
        if answer is None and trace_id in last_prompt:
            answer = last_prompt[trace_id].attributes.get("response")
        if not task or answer is None or trace_id not in trace_reward:
            continue
        task = str(task)
        meta = {
            "level": "global",
            "signature": "*",
            "context_hash": context_hash(task),
            "prompt_hash": context_hash(task),
        }
        group = levels["global"].setdefault((task,), _Group(task, meta))
        group.add(str(answer), trace_reward[trace_id], trace_ts[trace_id], trace_id, trace_agent[trace_id])
    return levels, {"spans": n, "traces": len(trace_agent), "unrewarded_actions": unrewarded}


def group_lines(
    groups: dict[tuple, _Group], min_candidates: int, max_candidates: int, drop_equal_rewards: bool
) -> tuple[list[dict[str, Any]], int, int]:
    """The JSONL lines of one level's groups, and how many were dropped as too small / equal-reward."""
    lines = []
    few = equal = 0
    for group in groups.values():
        line = group.to_line(max_candidates)
        rewards = [c["reward"] for c in line["candidates"]]
        if len(rewards) < min_candidates:
            few += 1
            continue
        if drop_equal_rewards and max(rewards) - min(rewards) == 0:
            equal += 1
            continue
        lines.append(line)
    return lines, few, equal


def write_jsonl_atomic(path: Path, lines: list[dict[str, Any]]) -> None:
    """Write ``lines`` as JSONL, atomically."""
    _write_jsonl_atomic(path, lines)


def _write_jsonl_atomic(path: Path, lines: list[dict[str, Any]]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode())


def mine(store: TraceStore, cfg: MineConfig) -> MineReport:
    """Build the configured levels from ``store`` and write them; returns the report."""
    until = time.time() if cfg.until is None else cfg.until
    since = None if cfg.hours is None else until - cfg.hours * 3600.0
    spans = store.iter_spans(
        kinds=("prompt", "reward", "content"), since=since, until=until, agent_id=cfg.agent_id
    )
    levels, counts = build_groups(spans)
    report = MineReport(
        window=(since, until),
        spans=counts["spans"],
        traces=counts["traces"],
        unrewarded_actions=counts["unrewarded_actions"],
    )
    for level in cfg.levels:
        lines, few, equal = group_lines(
            levels[level], cfg.min_candidates, cfg.max_candidates, cfg.drop_equal_rewards
        )
        path = level_path(cfg.out, level)
        _write_jsonl_atomic(path, lines)
        report.written[level] = len(lines)
        report.too_few_candidates[level] = few
        report.equal_rewards[level] = equal
        report.files[level] = str(path)
        logger.info(
            "mined %d %s groups into %s (%d too small, %d equal-reward dropped)",
            len(lines),
            level,
            path,
            few,
            equal,
        )
    return report


ALIASES = {"db": "db", "out": "out", "hours": "hours"}
