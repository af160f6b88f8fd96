"""Rubric judge: transparent, dependency-free scoring of answer quality, plus tool and coordination rewards.

Answer quality is the sum of three bounded parts:

* **structure** (0-0.3): paragraphs, lists, code blocks, headings, complete sentences;
* **depth** (0-0.4): length (saturating), reasoning markers ("because", "for example", ...), and how many of
  the query's content words the answer addresses;
* **similarity** (0-0.3): token F1 against the ``reference`` (against the query's terms when there is none).

``context`` may also carry agent telemetry, scored with the trace reward scheme and returned as components:
``tool_results`` (list of ``success`` / ``error`` / ``empty``: +1 / -1 / -0.5 each) and ``coordination``
(``rounds``, ``quality`` in [0, 1], ``consensus`` bool, ``tokens``: ``2 * quality``, +1 for consensus or -0.5
without, -``round_penalty`` per round after the first, -``token_penalty`` per token).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from dspy_rl.judges.base import InvalidItem, JudgeItem, JudgeScore, clip01

TOOL_REWARDS = {"success": 1.0, "error": -1.0, "empty": -0.5}
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
    """Bag-of-words F1 between two texts (0 when either is empty)."""
    ta, tb = Counter(tokens(a)), Counter(tokens(b))
    common = sum((ta & tb).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ta.values()), common / sum(tb.values())
    return 2 * precision * recall / (precision + recall)


def structure_score(text: str) -> float:
    """0-0.3 for visible organization."""
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
    return min(0.3, score)


def depth_score(query: str, response: str) -> float:
    """0-0.4 for substance: length (saturating at ~150 words), reasoning, coverage of the query's terms."""
    words = len(response.split())
    length = min(1.0, words / 150.0) * 0.2
    lowered = response.lower()
    reasoning = min(1.0, sum(marker in lowered for marker in _REASONING) / 3.0) * 0.1
    q = set(tokens(query))
    coverage = (len(q & set(tokens(response))) / len(q) if q else 0.0) * 0.1
    return min(0.4, length + reasoning + coverage)


def similarity_score(query: str, response: str, reference: str | None) -> float:
    """0-0.3: token F1 with the reference, or with the query when no reference is given."""
    return 0.3 * token_f1(response, reference if reference else query)


def tool_reward(results: Sequence[str]) -> float:
    """Sum of per-call rewards: success +1, error -1, empty -0.5."""
    total = 0.0
    for r in results:
        if r not in TOOL_REWARDS:
            raise InvalidItem(f"context.tool_results has {r!r}; expected one of {sorted(TOOL_REWARDS)}")
        total += TOOL_REWARDS[r]
    return total


def coordination_reward(
    coord: Mapping[str, Any], round_penalty: float = 0.1, token_penalty: float = 1e-4
) -> float:
    """Multi-agent coordination reward: ``2*quality + (1 | -0.5) - round_penalty*(rounds-1) - token_penalty*tokens``."""
    try:
        rounds = int(coord.get("rounds", 1))
        quality = float(coord.get("quality", 0.0))
        consensus = bool(coord.get("consensus", False))
        n_tokens = int(coord.get("tokens", 0))
    except (TypeError, ValueError) as exc:
        raise InvalidItem(f"context.coordination has a non-numeric field: {exc}") from exc
    if rounds < 1 or not 0.0 <= quality <= 1.0 or n_tokens < 0:
        raise InvalidItem(
            "context.coordination needs rounds >= 1, quality in [0, 1], tokens >= 0; "
            f"got rounds={rounds}, quality={quality}, tokens={n_tokens}"
        )
    return (
        2.0 * quality + (1.0 if consensus else -0.5) - round_penalty * (rounds - 1) - token_penalty * n_tokens
    )


class RubricJudge:
    """Rule-based judge; cheap enough to run in the ensemble ingress itself, here as its own deployment."""

    def __init__(self, name: str = "rubric", round_penalty: float = 0.1, token_penalty: float = 1e-4) -> None:
        self.name = name
        self.round_penalty = round_penalty
        self.token_penalty = token_penalty

    def score_one(self, item: JudgeItem) -> JudgeScore:
        s = structure_score(item.response)
        d = depth_score(item.query, item.response)
        m = similarity_score(item.query, item.response, item.reference)
        components = {"structure": round(s, 4), "depth": round(d, 4), "similarity": round(m, 4)}
        against = "reference" if item.reference else "query"
        explanation = f"structure {s:.2f}/0.3, depth {d:.2f}/0.4, similarity to {against} {m:.2f}/0.3"
        if "tool_results" in item.context:
            results = item.context["tool_results"]
            if not isinstance(results, list):
                raise InvalidItem("context.tool_results must be a list of 'success' / 'error' / 'empty'")
            components["tool_reward"] = tool_reward(results)
            explanation += f"; tool reward {components['tool_reward']:+.1f}"
        if "coordination" in item.context:
            coord = item.context["coordination"]
            if not isinstance(coord, Mapping):
                raise InvalidItem(
                    "context.coordination must be an object with rounds/quality/consensus/tokens"
                )
            components["coordination_reward"] = round(
                coordination_reward(coord, self.round_penalty, self.token_penalty), 6
            )
            explanation += f"; coordination reward {components['coordination_reward']:+.2f}"
        return JudgeScore(clip01(s + d + m), explanation, components)

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        return [self.score_one(item) for item in items]
