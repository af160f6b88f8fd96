"""Global objectives for online text GRPO: a reward split into objective terms, weighted into the training reward.

The objectives are the env trainer's (:data:`dspy_rl.envs.objectives.OBJECTIVES`). A *terms function* returns, per
completion, ``{objective: term}``; :class:`ObjectiveReward` turns it into a plain reward function with
``reward = sum(weight[o] * term[o])`` and keeps each objective's mean term for the run's metrics
(``objective/<name>``). With every weight 1 the reward is the terms' sum, i.e. the unsplit reward:

* ``reward=rubric``: :meth:`ToolCommandRubric.terms`: ``query_satisfaction`` = the right tool and argument (0.7 at
  most), ``quality`` = a bare two-word command (0.3); their sum is the rubric score;
* ``reward=judges``: :func:`judge_terms`: judge ``j``'s score goes to ``objective_judges[j]``, divided by the number
  of judges that answered, so the terms sum to the answering judges' unweighted mean score.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from dspy_rl.envs.objectives import OBJECTIVES, ObjectivesConfig, weighted

TermsFn = Callable[[Sequence[str], Sequence[str]], Sequence[Mapping[str, float]]]


class ObjectiveReward:
    """A reward function (``(prompts, completions) -> rewards``) over a terms function and objective weights."""

    def __init__(self, terms_fn: TermsFn, objectives: ObjectivesConfig) -> None:
        self.terms_fn = terms_fn
        self.weights = objectives.vector()
        self._sums = np.zeros(len(OBJECTIVES))
        self._count = 0

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        rows = list(self.terms_fn(prompts, completions))
        if len(rows) != len(completions):
            raise ValueError(f"objective terms: {len(rows)} rows for {len(completions)} completions")
        terms = np.zeros((len(rows), len(OBJECTIVES)))
        for i, row in enumerate(rows):
            unknown = sorted(set(row) - set(OBJECTIVES))
            if unknown:
                raise ValueError(f"objective terms of completion {i}: unknown objectives {unknown}")
            for j, name in enumerate(OBJECTIVES):
                value = float(row.get(name, 0.0))
                if not math.isfinite(value):
                    raise ValueError(f"objective terms of completion {i}: {name}={value} is not finite")
                terms[i, j] = value
        self._sums += terms.sum(axis=0)
        self._count += len(rows)
        return [float(r) for r in weighted(terms, self.weights)]

    def pop_metrics(self) -> dict[str, float]:
        """Mean term per objective over the completions scored since the last call (``objective/<name>``)."""
        if not self._count:
            return {}
        out = {
            f"objective/{name}": float(v)
            for name, v in zip(OBJECTIVES, self._sums / self._count, strict=True)
        }
        self._sums[:] = 0.0
        self._count = 0
        return out


def judge_terms(
    judge: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], objective_of: Mapping[str, str]
) -> TermsFn:
    """A terms function over a judge ensemble's full answers (``JudgeClient.judge``: ``per_judge`` scores)."""

    def terms(prompts: Sequence[str], completions: Sequence[str]) -> list[dict[str, float]]:
        answers = judge([{"query": p, "response": c} for p, c in zip(prompts, completions, strict=True)])
        rows = []
        for answer in answers:
            per_judge: Mapping[str, float] = answer.get("per_judge") or {}
            row = dict.fromkeys(OBJECTIVES, 0.0)
            for name, score in per_judge.items():
                if name not in objective_of:
                    raise ValueError(
                        f"judge {name!r} has no objective; add objective_judges.{name}=<one of {', '.join(OBJECTIVES)}>"
                    )
                row[objective_of[name]] += float(score) / len(per_judge)
            rows.append(row)
        return rows

    return terms
