"""``dspy-rl grpo apply-policy``: turn the trace store's recent actions into a policy file an agent reads.

From the actions of the last ``hours`` (tool spans, and model calls that carry rewards):

* ``prefer``: the ``top_k`` tools and the ``top_k`` signatures (DSPy predictors / proxied models) by mean reward;
* ``deny``: the ``bottom_k`` tools with the lowest mean reward, only those below zero, each with a regex
  ``trigger`` built from the most frequent keywords of the prompts that led to it (so the tool is denied for that
  kind of request only).

A tool's reward is the shared scheme's (:class:`dspy_rl.traces.rewards.RewardComputer`: +1 success, -1 failure,
-0.5 empty, minus the step cost) from its recorded status; a signature's is the mean of the reward spans that target
its calls. The file ``<workspace>/.dspy_policy.yaml`` is written atomically (temporary file, fsync, rename); the
DSPy integration reads it (:func:`dspy_rl.integrations.dspy.load_policy_file`).
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore

from dspy_rl.config import require
from dspy_rl.traces.rewards import TOOL_STATUSES, RewardComputer, tokens
from dspy_rl.traces.store import TraceStore
from dspy_rl.utils.atomic import atomic_write_bytes

POLICY_FILE = ".dspy_policy.yaml"
STOPWORDS = frozenset(
    "a an and are as at be by for from has have how i in is it its of on or that the this to was what when where "
    "which who why will with you your user system assistant please can do does should would could my me we our "
    "question trajectory answer next thought tool name args".split()
)


class ApplyPolicyError(ValueError):
    """Nothing to build a policy from, or nowhere to write it (one line, with the fix)."""


@dataclass
class ApplyPolicyConfig:
    """Settings of ``dspy-rl grpo apply-policy``."""

    store: str = "runs/traces.db"
    """SQLite trace store to read."""
    workspace: str | None = None
    """Directory that receives .dspy_policy.yaml (must exist). Required."""
    hours: float = 24.0
    """Look back this many hours."""
    top_k: int = 3
    """How many tools and signatures to prefer."""
    bottom_k: int = 1
    """How many of the worst tools (mean reward < 0) to deny."""
    min_samples: int = 1
    """Ignore tools/signatures seen fewer times than this in the window."""
    keywords: int = 3
    """Keywords per deny trigger."""
    agent_id: str | None = None
    """Only this agent's actions (null: all)."""

    def __post_init__(self) -> None:
        require(bool(self.workspace), "workspace", self.workspace, "an existing directory (--workspace DIR)")
        require(self.hours > 0, "hours", self.hours, "hours > 0")
        require(self.top_k >= 0, "top_k", self.top_k, "an int >= 0")
        require(self.bottom_k >= 0, "bottom_k", self.bottom_k, "an int >= 0")
        require(self.min_samples >= 1, "min_samples", self.min_samples, "an int >= 1")
        require(self.keywords >= 1, "keywords", self.keywords, "an int >= 1")


ConfigStore.instance().store(group="schema", name="apply_policy", node=ApplyPolicyConfig)


def _keywords(texts: list[str], k: int) -> list[str]:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w for w in tokens(text) if len(w) > 2 and w not in STOPWORDS and not w.isdigit()})
    return [w for w, _ in counts.most_common(k)]


def build_policy(store: TraceStore, cfg: ApplyPolicyConfig, now: float | None = None) -> dict[str, Any]:
    """The policy document from ``store`` (raises :class:`ApplyPolicyError` when the window has no actions)."""
    now = time.time() if now is None else now
    since = now - cfg.hours * 3600.0
    spans = list(
        store.iter_spans(kinds=("prompt", "tool", "reward"), since=since, until=now, agent_id=cfg.agent_id)
    )
    prompts = {s.span_id: s for s in spans if s.kind == "prompt"}
    tools = [s for s in spans if s.kind == "tool" and s.name != "finish"]
    if not tools and not prompts:
        raise ApplyPolicyError(
            f"no actions in {cfg.store!r} in the last {cfg.hours:g} h; record some (serve proxy, the DSPy recorder, "
            "TraceCollector) or widen --hours"
        )
    rc = RewardComputer()
    tool_rewards: dict[str, list[float]] = defaultdict(list)
    tool_prompts: dict[str, list[str]] = defaultdict(list)
    for t in tools:
        status = str(t.attributes.get("status", "success"))
        if status not in TOOL_STATUSES:
            continue
        tool_rewards[t.name].append(rc.tool_reward(status))
        parent = prompts.get(t.parent_id or "")
        text = parent.attributes.get("prompt") if parent is not None else None
        if isinstance(text, str):
            # the request part of a prompt: its last user turn, where the task is stated
            tool_prompts[t.name].append(text.rsplit("user:", 1)[-1][:4000])
    sig_rewards: dict[str, list[float]] = defaultdict(list)
    for r in spans:
        if r.kind == "reward" and r.reward is not None:
            target = prompts.get(r.attributes.get("target") or r.parent_id or "")
            if target is not None:
                sig_rewards[target.name].append(float(r.reward))

    def ranked(table: dict[str, list[float]]) -> list[dict[str, Any]]:
        rows = [
            {"name": name, "mean_reward": round(sum(v) / len(v), 4), "n": len(v)}
            for name, v in table.items()
            if len(v) >= cfg.min_samples
        ]
        return sorted(rows, key=lambda r: (-r["mean_reward"], -r["n"], r["name"]))

    tool_rank, sig_rank = ranked(tool_rewards), ranked(sig_rewards)
    deny = []
    for row in reversed(tool_rank[-cfg.bottom_k :] if cfg.bottom_k else []):
        if row["mean_reward"] >= 0 or any(row["name"] == p["name"] for p in tool_rank[: cfg.top_k]):
            continue
        words = _keywords(tool_prompts[row["name"]], cfg.keywords)
        trigger = r"(?i)\b(" + "|".join(re.escape(w) for w in words) + r")\b" if words else ".*"
        deny.append(
            {
                "tool": row["name"],
                "trigger": trigger,
                "keywords": words,
                **{k: row[k] for k in ("mean_reward", "n")},
            }
        )
    return {
        "version": 1,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "window_hours": cfg.hours,
        "actions": {"tools": len(tools), "model_calls": len(prompts)},
        "prefer": {"tools": tool_rank[: cfg.top_k], "signatures": sig_rank[: cfg.top_k]},
        "deny": deny,
    }


def apply_policy(cfg: ApplyPolicyConfig) -> tuple[Path, dict[str, Any]]:
    """Build the policy and write ``<workspace>/.dspy_policy.yaml`` atomically; returns (path, document)."""
    workspace = Path(str(cfg.workspace))
    if not workspace.is_dir():
        raise ApplyPolicyError(
            f"workspace={str(cfg.workspace)!r} is not an existing directory; create it or pass another"
        )
    if not Path(cfg.store).is_file():
        raise ApplyPolicyError(
            f"store={cfg.store!r} does not exist; pass the SQLite trace store (store=runs/traces.db)"
        )
    with TraceStore(cfg.store) as store:
        doc = build_policy(store, cfg)
    path = workspace / POLICY_FILE
    atomic_write_bytes(path, yaml.safe_dump(doc, sort_keys=False).encode())
    return path, doc
