"""RewardComputer: turn what a trace recorded into rewards, with the scheme of DESIGN.md.

Three families, each returned with its parts so a reward is always explainable:

* **tool rewards** per tool span: +1 success, -1 failure, -0.5 empty result, and a per-step cost;
* **answer quality** of a content span in [0, 1]: structure (paragraphs, lists, code blocks), depth (length,
  saturating) and, when a reference answer is known, token-F1 similarity to it;
* **coordination** per coordination span between agents: accepted hand-offs are rewarded, rejected ones and
  time-outs penalized, and a message an agent sends twice in a row is penalized as redundant.

:meth:`RewardComputer.trace_rewards` computes all three for one trace's spans and returns reward spans (kind
``reward``, ``attributes.target`` = the span they score) ready to record, plus the completion bonus when the
trace reached its goal.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dspy_rl.traces.spans import Span

TOOL_STATUSES = ("success", "failure", "empty")
COORDINATION_STATUSES = ("accepted", "rejected", "timeout")
_TOKEN = re.compile(r"[A-Za-z0-9_]+")


@dataclass
class RewardConfig:
    """Weights of the reward scheme (defaults follow DESIGN.md)."""

    tool_success: float = 1.0
    """Reward of a tool call that succeeded."""
    tool_failure: float = -1.0
    """Reward of a tool call that failed."""
    tool_empty: float = -0.5
    """Reward of a tool call that returned nothing useful."""
    step_cost: float = 0.01
    """Subtracted for every tool call (discourages long episodes)."""
    completion_bonus: float = 5.0
    """Added once when the trace reached its goal (``trace.end`` status ``success``)."""
    quality_weight: float = 1.0
    """Scale of the answer-quality reward (quality itself is in [0, 1])."""
    structure_weight: float = 0.3
    """Share of structure in answer quality."""
    depth_weight: float = 0.3
    """Share of depth in answer quality."""
    similarity_weight: float = 0.4
    """Share of reference similarity in answer quality (redistributed when there is no reference)."""
    depth_saturation_tokens: int = 200
    """Answer length (tokens) at which depth reaches 1."""
    handoff_accepted: float = 0.5
    """Reward of a coordination message the receiving agent accepted."""
    handoff_rejected: float = -0.5
    """Reward of a coordination message the receiving agent rejected."""
    handoff_timeout: float = -1.0
    """Reward of a coordination message that got no answer in time."""
    redundant_message: float = -0.25
    """Added when an agent repeats its previous message to the same receiver."""

    def __post_init__(self) -> None:
        shares = (self.structure_weight, self.depth_weight, self.similarity_weight)
        if any(w < 0 for w in shares) or sum(shares) <= 0:
            raise ValueError(f"quality weights {shares} must be >= 0 and not all zero")
        if self.depth_saturation_tokens < 1:
            raise ValueError(f"depth_saturation_tokens={self.depth_saturation_tokens} must be >= 1")


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens."""
    return [t.lower() for t in _TOKEN.findall(text)]


def token_f1(candidate: str, reference: str) -> float:
    """SQuAD-style token F1 between two texts, in [0, 1]."""
    cand, ref = Counter(tokens(candidate)), Counter(tokens(reference))
    overlap = sum((cand & ref).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(cand.values())
    recall = overlap / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def structure_score(text: str) -> float:
    """Fraction of structural cues present: several paragraphs, a list, a code block, a conclusion line."""
    lines = [line.strip() for line in text.strip().splitlines()]
    cues = (
        text.count("\n\n") >= 1,
        any(re.match(r"([-*]|\d+[.)])\s", line) for line in lines),
        "```" in text or any(line.startswith("    ") for line in text.splitlines()),
        bool(lines) and len(lines[-1]) > 0 and lines[-1][-1:] in ".!`)",
    )
    return sum(cues) / len(cues)


@dataclass
class QualityScore:
    """Answer quality and its parts (each in [0, 1])."""

    structure: float
    depth: float
    similarity: float | None
    total: float


class RewardComputer:
    """Computes tool, answer-quality and coordination rewards (see module docstring)."""

    def __init__(self, config: RewardConfig | None = None) -> None:
        self.config = config or RewardConfig()

    def tool_reward(self, status: str) -> float:
        """Reward of one tool call from its status (``success``, ``failure`` or ``empty``), step cost included."""
        c = self.config
        table = {"success": c.tool_success, "failure": c.tool_failure, "empty": c.tool_empty}
        if status not in table:
            raise ValueError(f"tool status {status!r}; expected one of {TOOL_STATUSES}")
        return table[status] - c.step_cost

    def answer_quality(self, answer: str, reference: str | None = None) -> QualityScore:
        """Quality of an answer in [0, 1]; without a reference the similarity share goes to the other parts."""
        c = self.config
        structure = structure_score(answer)
        depth = min(1.0, len(tokens(answer)) / c.depth_saturation_tokens)
        if reference:
            similarity = token_f1(answer, reference)
            weights = (c.structure_weight, c.depth_weight, c.similarity_weight)
            parts = (structure, depth, similarity)
        else:
            similarity = None
            weights = (c.structure_weight, c.depth_weight)
            parts = (structure, depth)
        if sum(weights) == 0:  # only similarity was weighted and there is no reference
            return QualityScore(structure, depth, similarity, 0.0)
        total = sum(w * p for w, p in zip(weights, parts, strict=True)) / sum(weights)
        return QualityScore(structure, depth, similarity, total)

    def coordination_rewards(self, spans: Sequence[Span]) -> list[float]:
        """One reward per coordination span, in order: hand-off outcome plus the redundancy penalty."""
        c = self.config
        table = {"accepted": c.handoff_accepted, "rejected": c.handoff_rejected, "timeout": c.handoff_timeout}
        last_message: dict[tuple[str, str], str] = {}
        rewards = []
        for span in spans:
            status = span.attributes.get("status", "accepted")
            if status not in table:
                raise ValueError(
                    f"coordination span {span.span_id}: status {status!r}; expected one of {COORDINATION_STATUSES}"
                )
            reward = table[status]
            pair = (span.agent_id, str(span.attributes.get("to", "")))
            message = str(span.attributes.get("message", ""))
            if message and last_message.get(pair) == message:
                reward += c.redundant_message
            last_message[pair] = message
            rewards.append(reward)
        return rewards

    def trace_rewards(self, spans: Sequence[Span], reference: str | None = None) -> list[Span]:
        """Reward spans for every tool, content and coordination span of one trace (plus completion).

        ``reference`` is the expected final answer, if known. Existing reward spans in ``spans`` are ignored,
        so calling this twice on the same trace gives the same rewards (and the same span ids would not be,
        so record them once).
        """
        if not spans:
            return []
        trace_id, agent_id = spans[0].trace_id, spans[0].agent_id
        out: list[Span] = []

        def emit(target: Span | None, name: str, reward: float, **components: float | None) -> None:
            out.append(
                Span(
                    kind="reward",
                    trace_id=trace_id,
                    agent_id=agent_id if target is None else target.agent_id,
                    name=name,
                    parent_id=None if target is None else target.span_id,
                    start_ts=max(s.end_ts or s.start_ts for s in spans),
                    reward=float(reward),
                    attributes={
                        "target": None if target is None else target.span_id,
                        "components": components,
                    },
                )
            )

        for span in spans:
            if span.kind == "tool":
                status = str(span.attributes.get("status", "success"))
                emit(span, "tool", self.tool_reward(status), step_cost=-self.config.step_cost)
            elif span.kind == "content" and span.name != "trace.end":
                q = self.answer_quality(str(span.attributes.get("text", "")), reference)
                emit(
                    span,
                    "answer_quality",
                    self.config.quality_weight * q.total,
                    structure=q.structure,
                    depth=q.depth,
                    similarity=q.similarity,
                )
        coordination = [s for s in spans if s.kind == "coordination"]
        for span, reward in zip(coordination, self.coordination_rewards(coordination), strict=True):
            emit(span, "coordination", reward)
        ends = [s for s in spans if s.kind == "content" and s.name == "trace.end"]
        if ends and ends[-1].attributes.get("status") == "success":
            emit(None, "completion", self.config.completion_bonus)
        return out
