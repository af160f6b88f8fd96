"""The judge ensemble in this process (no Ray Serve): every member scores the batch, :func:`aggregate` combines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from dspy_rl.judges.base import Judge, JudgeItem, JudgeScore
from dspy_rl.judges.ensemble import aggregate


class LocalEnsemble:
    """Weighted mean of member judges, with the same aggregation as the served ensemble."""

    def __init__(
        self, members: Sequence[Judge], weights: Mapping[str, float], name: str = "ensemble"
    ) -> None:
        self.name, self.members, self.weights = name, list(members), dict(weights)

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        answers = {m.name: [s.to_dict() for s in m.score_batch(items)] for m in self.members}
        out = []
        for k in range(len(items)):
            agg = aggregate({n: a[k] for n, a in answers.items()}, self.weights, {})
            out.append(JudgeScore(min(1.0, max(0.0, agg["score"])), agg["explanation"], agg["per_judge"]))
        return out
