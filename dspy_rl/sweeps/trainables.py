"""Ray Tune function trainables for ``dspy-rl sweep``: one PPO training run per trial, or a synthetic objective.

Both report, through ``ray.tune.report``, the sweep metric and the cost keys ``wall_s`` and ``env_steps`` after
every training iteration, so the searcher sees the final score and cost of each trial.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ray import tune

from dspy_rl.sweeps.objectives import get_objective

logger = logging.getLogger(__name__)


def _override_value(value: Any) -> str:
    """A Hydra override value for ``value`` (floats in repr form so tiny learning rates keep their digits)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if value is None:
        return "null"
    return str(value)


def trial_overrides(config: Mapping[str, Any], fixed: Sequence[str], run_dir: str) -> list[str]:
    """Hydra overrides for one training trial: the fixed ones, then the searched values, then its run dir."""
    searched = [f"{k}={_override_value(v)}" for k, v in sorted(config.items())]
    # Quoted: trial directories may contain '=' and ',' (Hydra override grammar characters).
    quoted = "'" + str(run_dir).replace("\\", "\\\\").replace("'", "\\'") + "'"
    return [*fixed, *searched, f"run_dir={quoted}"]


def train_trainable(config: dict[str, Any], fixed: Sequence[str] = (), metric: str = "success_rate") -> None:
    """One ``train`` run with the trial's hyperparameters as overrides of conf/train.yaml.

    Forwards the trainer's reports that carry ``metric`` (Tune requires the metric in every result): each
    iteration's for a training metric such as ``success_rate``, only the final one for ``eval_success_rate``
    (the trainer's evaluation of the trained policy, with ``eval_episodes`` > 0 among the fixed overrides).
    """
    from dspy_rl.trainer import run_training

    trial_dir = tune.get_context().get_trial_dir() or os.getcwd()
    run_dir = os.path.join(trial_dir, "train")
    overrides = trial_overrides(config, fixed, run_dir)
    logger.info("trial overrides: %s", " ".join(overrides))
    reported = False

    def report(metrics: dict[str, Any]) -> None:
        nonlocal reported
        if metric in metrics:
            clean = {
                k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            tune.report(clean)
            reported = True

    run_training(overrides, report=report)
    if not reported:
        raise RuntimeError(
            f"the trial never reported the sweep metric {metric!r}; for eval_* metrics add eval_episodes=<n> "
            "to the sweep's fixed overrides"
        )


def synthetic_trainable(config: dict[str, Any], objective: str = "branin", metric: str = "score") -> None:
    """Evaluate a synthetic objective (see :mod:`dspy_rl.sweeps.objectives`); a failed point raises."""
    start = time.perf_counter()
    score, cost = get_objective(objective)(config)
    if score is None or not math.isfinite(score):
        raise RuntimeError(f"synthetic objective {objective!r} diverged at {config}")
    tune.report(
        {
            metric: float(score),
            "env_steps": float(cost),
            "cost": float(cost),
            "wall_s": time.perf_counter() - start,
        }
    )
