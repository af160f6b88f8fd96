"""Drive a Tune ``Searcher`` against a synthetic objective in-process, without Tune (tests and the benchmark).

``parallel > 1`` keeps that many suggestions outstanding, like Tune under a ConcurrencyLimiter: the searcher must
propose the next point while others are still pending; the oldest pending trial completes first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from ray.tune.search import Searcher

from dspy_rl.sweeps.objectives import SyntheticObjective


@dataclass
class TrialRecord:
    """One evaluated trial, in completion order."""

    trial_id: str
    config: dict[str, Any]
    score: float | None
    cost: float


def run_direct(
    searcher: Searcher,
    objective: SyntheticObjective,
    num_trials: int,
    parallel: int = 1,
    metric: str = "score",
    cost_metric: str = "cost",
    stop_score: float | None = None,
) -> list[TrialRecord]:
    """Run ``num_trials`` trials; failed evaluations (score ``None``) are reported as errored trials.

    With ``stop_score``, stop as soon as a trial scores at least that much (outstanding trials are dropped).
    """
    if num_trials < 1 or parallel < 1:
        raise ValueError(f"need num_trials >= 1 and parallel >= 1, got {num_trials}, {parallel}")
    outstanding: deque[tuple[str, dict[str, Any]]] = deque()
    records: list[TrialRecord] = []
    issued = 0
    while len(records) < num_trials:
        while issued < num_trials and len(outstanding) < parallel:
            trial_id = f"t{issued:05d}"
            config = searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                raise RuntimeError(f"{type(searcher).__name__} returned {config!r} for trial {trial_id}")
            outstanding.append((trial_id, config))
            issued += 1
        trial_id, config = outstanding.popleft()
        score, cost = objective(config)
        if score is None:
            searcher.on_trial_complete(trial_id, {cost_metric: cost}, error=True)
        else:
            searcher.on_trial_complete(trial_id, {metric: score, cost_metric: cost})
        records.append(TrialRecord(trial_id, dict(config), score, float(cost)))
        if stop_score is not None and score is not None and score >= stop_score:
            break
    return records


def cost_to_reach(records: list[TrialRecord], threshold: float) -> float | None:
    """Cumulative cost of all trials up to and including the first with score >= threshold (None: never)."""
    total = 0.0
    for r in records:
        total += r.cost
        if r.score is not None and r.score >= threshold:
            return total
    return None
