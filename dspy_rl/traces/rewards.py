"""The reward scheme, in one place: the trace SDK's :class:`RewardComputer` and the rubric judge both score with it.

Three families, each returned with its parts so a reward is always explainable:

* **tool rewards** per tool call: +1 success, -1 failure (``error`` is a synonym), -0.5 empty result;
* **answer quality** in [0, 1], the sum of three bounded parts: **structure** (0-0.3: paragraphs, lists, code
  blocks, headings, complete sentences), **depth** (0-0.4: length saturating at ~150 words, reasoning markers,
  coverage of the query's content words) and **similarity** (0-0.3: token F1 against the reference answer, against
  the query when there is none);
* **coordination** of a multi-agent episode: ``2 * quality + (+1 consensus | -0.5 without) - round_penalty *
  (rounds - 1) - token_penalty * tokens`` (quality x2, consensus, efficiency, token penalty); each **vote** earns
  +1 when it went to the answer that won and -0.5 otherwise. Point-to-point hand-offs (``handoff`` coordination
  spans) are rewarded by their outcome: accepted / rejected / timeout, minus a penalty for repeating a message.

:meth:`RewardComputer.trace_rewards` computes these for one trace's spans and returns reward spans (kind
``reward``, ``attributes.target`` = the span they score) ready to record, plus the completion bonus when the
trace reached its goal. the rubric judge (``judges/rubric.py``) imports the functions below, so a judge and a trace score
the same episode identically.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dspy_rl.traces.spans import Span

TOOL_REWARDS = {"success": 1.0, "failure": -1.0, "error": -1.0, "empty": -0.5}
TOOL_STATUSES = ("success", "failure", "empty")
COORDINATION_STATUSES = ("accepted", "rejected", "timeout")
#: Names of the coordination spans an orchestrator records (see :mod:`dspy_rl.traces.agents`).
ANSWER, VOTE, RESTART, HANDOFF = "answer", "vote", "restart", "handoff"
STRUCTURE_MAX, DEPTH_MAX, SIMILARITY_MAX = 0.3, 0.4, 0.3
VOTE_AGREE, VOTE_DISAGREE = 1.0, -0.5
CONSENSUS_BONUS, NO_CONSENSUS = 1.0, -0.5
QUALITY_SCALE = 2.0

_WORD = re.compile(r"[A-Za-z0-9_]+")
_STOP = frozenset(
    "a an the and or of to in on for with is are was were be been it this that these those how what why when "
    "which who do does did can could should would will i you we they he she my your our their as at by from "
    "not no yes if then than so into about".split()
)
_REASONING = (
    "because",
    "therefore",
    "so that",
    "for example",
    "e.g.",
    "since",
    "however",
    "which means",
    "first",
    "then",
    "finally",
    "step",
)


def tokens(text: str) -> list[str]:
    """Lower-cased content words (stop words removed)."""
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP]


def token_f1(a: str, b: str) -> float:
    """Bag-of-words F1 between two texts' content words, in [0, 1] (0 when either is empty)."""
    ta, tb = Counter(tokens(a)), Counter(tokens(b))
    common = sum((ta & tb).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ta.values()), common / sum(tb.values())
    return 2 * precision * recall / (precision + recall)


def structure_score(text: str) -> float:
    """0-0.3 for visible organization: paragraphs, a list, a code block, a heading, complete sentences."""
    score = 0.0
    if len([p for p in text.split("\n\n") if p.strip()]) >= 2:
        score += 0.08
    if re.search(r"^\s*(?:[-*+]|\d+[.)])\s+\S", text, re.M):
        score += 0.08
    if "```" in text or re.search(r"^( {4}|\t)\S", text, re.M):
        score += 0.07
    if re.search(r"^#{1,6}\s+\S", text, re.M) or re.search(r"^\*\*[^*]+\*\*", text, re.M):
        score += 0.03
    sentences = [s for s in re.split(r"[.!?]\s", text.strip()) if len(s.split()) >= 3]
    if sentences:
        score += 0.04
    return min(STRUCTURE_MAX, score)


def depth_score(query: str, response: str) -> float:
    """0-0.4 for substance: length (saturating at ~150 words), reasoning markers, coverage of the query's terms."""
    words = len(response.split())
    length = min(1.0, words / 150.0) * 0.2
    lowered = response.lower()
    reasoning = min(1.0, sum(marker in lowered for marker in _REASONING) / 3.0) * 0.1
    q = set(tokens(query))
    coverage = (len(q & set(tokens(response))) / len(q) if q else 0.0) * 0.1
    return min(DEPTH_MAX, length + reasoning + coverage)


def similarity_score(query: str, response: str, reference: str | None) -> float:
    """0-0.3: token F1 with the reference, or with the query when no reference is given."""
    return SIMILARITY_MAX * token_f1(response, reference if reference else query)


@dataclass
class QualityScore:
    """Answer quality and its parts: structure 0-0.3, depth 0-0.4, similarity 0-0.3, total = their sum."""

    structure: float
    depth: float
    similarity: float
    total: float


def answer_quality(response: str, query: str = "", reference: str | None = None) -> QualityScore:
    """Quality of ``response`` to ``query`` in [0, 1] (see module docstring)."""
    s = structure_score(response)
    d = depth_score(query, response)
    m = similarity_score(query, response, reference)
    return QualityScore(s, d, m, min(1.0, s + d + m))


def tool_reward(status: str) -> float:
    """Reward of one tool call from its status: success +1, failure/error -1, empty -0.5."""
    if status not in TOOL_REWARDS:
        raise ValueError(f"tool status {status!r}; expected one of {sorted(TOOL_REWARDS)}")
    return TOOL_REWARDS[status]


def coordination_reward(
    rounds: int, quality: float, consensus: bool, n_tokens: int, round_penalty: float, token_penalty: float
) -> dict[str, float]:
    """The coordination reward's parts (``efficiency``, ``quality``, ``consensus``, ``tokens``) and ``total``."""
    if rounds < 1 or not 0.0 <= quality <= 1.0 or n_tokens < 0:
        raise ValueError(
            "coordination needs rounds >= 1, quality in [0, 1], tokens >= 0; "
            f"got rounds={rounds}, quality={quality}, tokens={n_tokens}"
        )
    parts = {
        "efficiency": -round_penalty * (rounds - 1),
        "quality": QUALITY_SCALE * quality,
        "consensus": CONSENSUS_BONUS if consensus else NO_CONSENSUS,
        "tokens": -token_penalty * n_tokens,
    }
    parts["total"] = parts["quality"] + parts["consensus"] + parts["efficiency"] + parts["tokens"]
    return parts


@dataclass
class CoordinationSummary:
    """What an orchestrated episode's coordination spans say: who won, with what answer, after how many rounds."""

    winner: str | None
    answer: str
    rounds: int
    consensus: bool
    tokens: int
    votes: list[tuple[Span, bool]] = field(default_factory=list)
    """Each vote span and whether it went to the winner."""

    def to_context(self, quality: float) -> dict[str, Any]:
        """The rubric judge's ``context.coordination`` object for this episode."""
        return {"rounds": self.rounds, "quality": quality, "consensus": self.consensus, "tokens": self.tokens}


def summarize_coordination(spans: Sequence[Span]) -> CoordinationSummary | None:
    """Summarize the ``answer`` / ``vote`` / ``restart`` coordination spans of a trace (None when it has none).

    Spans are taken in their ``seq`` attribute's order when they have one, else as given. Rounds = 1 + restarts; only answers and votes after the last restart count. The winner is the agent with the
    most votes (ties: the one that answered first); consensus = every vote went to it; tokens = content words of
    all answers (an answer span's ``tokens`` attribute, when given, is used instead).
    """
    coord = [s for s in spans if s.kind == "coordination" and s.name in (ANSWER, VOTE, RESTART)]
    seq = {id(s): s.attributes.get("seq", i) for i, s in enumerate(coord)}
    coord.sort(key=lambda s: seq[id(s)])  # ``seq`` (recording order) when the spans carry it
    if not any(s.name in (ANSWER, VOTE) for s in coord):
        return None
    restarts = [i for i, s in enumerate(coord) if s.name == RESTART]
    n_tokens = 0
    for s in coord:
        if s.name == ANSWER:
            given = s.attributes.get("tokens")
            n_tokens += (
                int(given) if isinstance(given, int) else len(tokens(str(s.attributes.get("text", ""))))
            )
    last_round = coord[restarts[-1] + 1 :] if restarts else coord
    answers: dict[str, str] = {}
    for s in last_round:
        if s.name == ANSWER:
            answers[str(s.attributes.get("agent", s.agent_id))] = str(s.attributes.get("text", ""))
    votes = [s for s in last_round if s.name == VOTE]
    counts = Counter(str(v.attributes.get("for", "")) for v in votes)
    order = list(answers) + [a for a in counts if a not in answers]
    winner = max(order, key=lambda a: (counts.get(a, 0), -order.index(a))) if order else None
    return CoordinationSummary(
        winner=winner,
        answer=answers.get(winner or "", ""),
        rounds=1 + len(restarts),
        consensus=bool(votes) and all(str(v.attributes.get("for", "")) == winner for v in votes),
        tokens=n_tokens,
        votes=[(v, str(v.attributes.get("for", "")) == winner) for v in votes],
    )


@dataclass
class RewardConfig:
    """Settings of the reward scheme that are not fixed by it (the scheme's numbers are module constants)."""

    step_cost: float = 0.0
    """Subtracted from every tool call's reward (0: the plain +1 / -1 / -0.5)."""
    completion_bonus: float = 5.0
    """Added once when the trace reached its goal (``trace.end`` status ``success``)."""
    quality_weight: float = 1.0
    """Scale of the answer-quality reward (quality itself is in [0, 1])."""
    round_penalty: float = 0.1
    """Coordination efficiency: subtracted per round (restart) after the first."""
    token_penalty: float = 1e-4
    """Coordination cost: subtracted per answer token."""
    handoff_accepted: float = 0.5
    """Reward of a hand-off message the receiving agent accepted."""
    handoff_rejected: float = -0.5
    """Reward of a hand-off message the receiving agent rejected."""
    handoff_timeout: float = -1.0
    """Reward of a hand-off message that got no answer in time."""
    redundant_message: float = -0.25
    """Added when an agent repeats its previous hand-off message to the same receiver."""

    def __post_init__(self) -> None:
        for name in ("step_cost", "round_penalty", "token_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


class RewardComputer:
    """Computes tool, answer-quality and coordination rewards (see module docstring).

    ``tools`` / ``answers`` / ``coordination`` switch each family on or off in :meth:`trace_rewards`.
    """

    def __init__(
        self,
        config: RewardConfig | None = None,
        *,
        tools: bool = True,
        answers: bool = True,
        coordination: bool = True,
    ) -> None:
        self.config = config or RewardConfig()
        self.tools, self.answers, self.coordination = tools, answers, coordination

    def tool_reward(self, status: str) -> float:
        """Reward of one tool call from its status (``success``, ``failure``/``error`` or ``empty``), step cost included."""
        return tool_reward(status) - self.config.step_cost

    def answer_quality(self, answer: str, reference: str | None = None, query: str = "") -> QualityScore:
        """Quality of an answer in [0, 1] (structure + depth + similarity)."""
        return answer_quality(answer, query, reference)

    def episode_coordination(
        self, summary: CoordinationSummary, query: str = "", reference: str | None = None
    ) -> dict[str, float]:
        """The coordination reward's parts for an orchestrated episode (quality = the winning answer's)."""
        quality = answer_quality(summary.answer, query, reference).total
        c = self.config
        return coordination_reward(
            summary.rounds, quality, summary.consensus, summary.tokens, c.round_penalty, c.token_penalty
        )

    def coordination_rewards(self, spans: Sequence[Span]) -> list[float]:
        """One reward per hand-off span, in order: its outcome plus the redundancy penalty."""
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
        """Reward spans for the tool, content and coordination spans of one trace (plus completion).

        ``reference`` is the expected final answer, if known; the query of answer quality is the trace's task
        (from its ``trace.end`` span). Existing reward spans in ``spans`` are ignored.
        """
        if not spans:
            return []
        trace_id, agent_id = spans[0].trace_id, spans[0].agent_id
        ends = [s for s in spans if s.kind == "content" and s.name == "trace.end"]
        query = str((ends[-1].attributes.get("task") if ends else None) or "")
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
            if span.kind == "tool" and self.tools:
                status = str(span.attributes.get("status", "success"))
                emit(span, "tool", self.tool_reward(status), step_cost=-self.config.step_cost)
            elif span.kind == "content" and span.name != "trace.end" and self.answers:
                q = self.answer_quality(str(span.attributes.get("text", "")), reference, query)
                emit(
                    span,
                    "answer_quality",
                    self.config.quality_weight * q.total,
                    structure=q.structure,
                    depth=q.depth,
                    similarity=q.similarity,
                )
        if self.coordination:
            handoffs = [
                s for s in spans if s.kind == "coordination" and s.name not in (ANSWER, VOTE, RESTART)
            ]
            for span, reward in zip(handoffs, self.coordination_rewards(handoffs), strict=True):
                emit(span, "coordination", reward)
            summary = summarize_coordination(spans)
            if summary is not None:
                for vote, agreed in summary.votes:
                    emit(vote, "vote", VOTE_AGREE if agreed else VOTE_DISAGREE)
                parts = self.episode_coordination(summary, query, reference)
                emit(None, "coordination_episode", parts.pop("total"), **parts)
        if ends and ends[-1].attributes.get("status") == "success":
            emit(None, "completion", self.config.completion_bonus)
        return out
