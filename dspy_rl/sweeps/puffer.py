"""PufferLib's own ``Protein`` (``pufferlib.sweep.Protein``) as a Ray Tune Searcher, for side-by-side comparison.

Only available when ``pufferlib.sweep`` imports (it needs pufferlib and pyro-ppl); otherwise constructing the
searcher raises ImportError saying what to install. PufferLib has no categorical space, so ``choice`` parameters
are rejected with a message.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from typing import Any

from ray.tune.search import Searcher

from dspy_rl.sweeps.spaces import Choice, Int, Linear, Log, Logit, Pow2, SearchSpace

_DISTRIBUTION = {
    Linear: "uniform",
    Int: "int_uniform",
    Pow2: "uniform_pow2",
    Log: "log_normal",
    Logit: "logit_normal",
}


def puffer_sweep_config(space: SearchSpace, metric: str, mode: str) -> dict[str, Any]:
    """PufferLib's sweep-config dict for ``space`` (search centre at the middle of each range)."""
    cfg: dict[str, Any] = {
        "method": "Protein",
        "metric": metric,
        "goal": "maximize" if mode == "max" else "minimize",
    }
    for p in space.params:
        if isinstance(p, Choice):
            raise ValueError(f"searcher=pufferlib has no categorical space; parameter {p.name!r} is a choice")
        mean = p.from_unit(0.5)
        cfg[p.name] = {
            "distribution": _DISTRIBUTION[type(p)],
            "min": p.min,
            "max": p.max,
            "mean": mean,
            "scale": "auto",
        }
    return cfg


class PufferProteinSearcher(Searcher):
    """Adapter: ``suggest`` -> ``Protein.suggest``; ``on_trial_complete`` -> ``Protein.observe(score, cost)``."""

    name = "pufferlib"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Mapping[str, Any]],
        metric: str,
        mode: str,
        cost_metric: str = "wall_s",
        max_suggestion_cost: float | None = None,
        num_warmup: int | None = None,
    ):
        try:
            from pufferlib.sweep import Protein
        except ImportError as exc:
            raise ImportError(
                f"searcher=pufferlib needs `pufferlib.sweep` importable ({exc}); `pip install pufferlib pyro-ppl`, "
                "or use searcher=protein (our implementation)"
            ) from exc
        super().__init__(metric=metric, mode=mode)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_spec(space)
        self.cost_metric = cost_metric
        kwargs: dict[str, Any] = {"num_random_samples": num_warmup or max(4, 2 * self.space.dim)}
        if max_suggestion_cost is not None:
            kwargs["max_suggestion_cost"] = max_suggestion_cost
        self.protein = Protein(puffer_sweep_config(self.space, metric, mode), **kwargs)
        self._configs: dict[str, dict[str, Any]] = {}

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        raw, _info = self.protein.suggest(None)
        config = {}
        for p in self.space.params:  # snap through our space so types and bounds are exactly ours
            config[p.name] = p.from_unit(p.to_unit(float(raw[p.name])))
        self._configs[trial_id] = config
        return dict(config)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self._configs.pop(trial_id, None)
        if config is None:
            return
        score = (result or {}).get(self._metric)
        cost = (result or {}).get(self.cost_metric)
        failed = error or not isinstance(score, (int, float)) or not math.isfinite(score)
        self.protein.observe(
            config, float(score) if not failed else 0.0, float(cost or 1.0), is_failure=failed
        )

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"protein": self.protein, "configs": self._configs}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        self.protein, self._configs = state["protein"], state["configs"]


__all__ = ["PufferProteinSearcher", "puffer_sweep_config"]
