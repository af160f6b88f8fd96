"""Build a searcher by name: ``protein`` | ``carbs`` | ``random`` | ``optuna`` | ``pufferlib``."""

from __future__ import annotations

from typing import Any

from ray.tune.search import Searcher

from dspy_rl.sweeps.spaces import SearchSpace

SEARCHERS = ("protein", "carbs", "random", "optuna", "pufferlib")


def make_searcher(
    name: str,
    space: SearchSpace,
    metric: str,
    mode: str,
    cost_metric: str,
    seed: int = 0,
    num_warmup: int | None = None,
    max_suggestion_cost: float | None = None,
    **options: Any,
) -> Searcher:
    """A fresh searcher; ``options`` go to the protein/carbs constructors (e.g. ``ucb_beta``, ``search_radius``)."""
    if name in ("protein", "carbs"):
        if name == "protein":
            from dspy_rl.sweeps.protein import ProteinSearcher as cls
        else:
            from dspy_rl.sweeps.carbs import CarbsSearcher as cls
        return cls(
            space,
            metric=metric,
            mode=mode,
            cost_metric=cost_metric,
            seed=seed,
            num_warmup=num_warmup,
            max_suggestion_cost=max_suggestion_cost,
            **options,
        )
    if options:
        raise ValueError(f"searcher={name} takes no searcher options, got {sorted(options)}")
    if name == "random":
        from dspy_rl.sweeps.baselines import RandomSearcher

        return RandomSearcher(space, metric=metric, mode=mode, seed=seed)
    if name == "optuna":
        from dspy_rl.sweeps.baselines import UnitCubeOptuna

        return UnitCubeOptuna(space, metric=metric, mode=mode, seed=seed, num_startup=num_warmup)
    if name == "pufferlib":
        from dspy_rl.sweeps.puffer import PufferProteinSearcher

        return PufferProteinSearcher(
            space,
            metric,
            mode,
            cost_metric=cost_metric,
            max_suggestion_cost=max_suggestion_cost,
            num_warmup=num_warmup,
        )
    raise ValueError(f"searcher={name!r}; choose one of {', '.join(SEARCHERS)}")
