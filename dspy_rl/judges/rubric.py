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

The scheme itself lives in :mod:`dspy_rl.traces.rewards` (shared with the trace SDK's ``RewardComputer``): this
module only validates the judge's JSON input and explains the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dspy_rl.judges.base import InvalidItem, JudgeItem, JudgeScore, clip01
from dspy_rl.traces import rewards as scheme
from dspy_rl.traces.rewards import depth_score, similarity_score, structure_score, token_f1, tokens

__all__ = [
    "RubricJudge",
    "coordination_reward",
    "depth_score",
    "similarity_score",
    "structure_score",
    "token_f1",
    "tokens",
    "tool_reward",
]

TOOL_RESULTS = ("success", "error", "failure", "empty")


def tool_reward(results: Sequence[str]) -> float:
    """Sum of per-call rewards of the shared scheme: success +1, error/failure -1, empty -0.5."""
    total = 0.0
    for r in results:
        if r not in TOOL_RESULTS:
            raise InvalidItem(f"context.tool_results has {r!r}; expected one of {sorted(TOOL_RESULTS)}")
        total += scheme.tool_reward(r)
    return total


def coordination_reward(
    coord: Mapping[str, Any], round_penalty: float = 0.1, token_penalty: float = 1e-4
) -> float:
    """Multi-agent coordination reward of the shared scheme:
    ``2*quality + (1 | -0.5) - round_penalty*(rounds-1) - token_penalty*tokens``."""
    try:
        rounds = int(coord.get("rounds", 1))
        quality = float(coord.get("quality", 0.0))
        consensus = bool(coord.get("consensus", False))
        n_tokens = int(coord.get("tokens", 0))
    except (TypeError, ValueError) as exc:
        raise InvalidItem(f"context.coordination has a non-numeric field: {exc}") from exc
    try:
        parts = scheme.coordination_reward(rounds, quality, consensus, n_tokens, round_penalty, token_penalty)
    except ValueError as exc:
        raise InvalidItem(f"context.{exc}") from None
    return parts["total"]


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
