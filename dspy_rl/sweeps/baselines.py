"""The peers our searchers are compared with, in the same parameterization: random search and Optuna (TPE).

Both work in the unit cube of a :class:`~dspy_rl.sweeps.spaces.SearchSpace` (log spaces are log-uniform, pow2 and
int round, choice is categorical), so a comparison measures the search strategy, not the encoding.
"""

from __future__ import annotations

import copy
import logging
import pickle
from collections.abc import Mapping
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from dspy_rl.sweeps.spaces import Choice, SearchSpace

logger = logging.getLogger(__name__)


class RandomSearcher(Searcher):
    """Independent uniform samples of the unit cube (the space's prior), seeded and restorable."""

    name = "random"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Mapping[str, Any]],
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
    ):
        super().__init__(metric=metric, mode=mode)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_spec(space)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.num_suggested = 0

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self.num_suggested += 1
        return self.space.from_unit(self._rng.random(self.space.dim))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Random search ignores results."""

    def observe(
        self, config: Mapping[str, Any], score: float | None, cost: float | None, failed: bool = False
    ) -> None:
        """Direct-use API (same as the cost-aware searchers); random search ignores results."""

    def get_state(self) -> dict[str, Any]:
        return {"rng": self._rng.bit_generator.state, "num_suggested": self.num_suggested, "seed": self.seed}

    def set_state(self, state: dict[str, Any]) -> None:
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self.num_suggested = int(state["num_suggested"])
        self.seed = int(state["seed"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


class UnitCubeOptuna(Searcher):
    """Ray Tune's ``OptunaSearch`` (TPE by default) over the unit cube of a :class:`SearchSpace`.

    Raises ImportError with the install command when optuna is missing.
    """

    name = "optuna"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Mapping[str, Any]],
        metric: str | None = None,
        mode: str | None = None,
        seed: int = 0,
        num_startup: int | None = None,
    ):
        try:
            import optuna
            from ray.tune.search.optuna import OptunaSearch
        except ImportError as exc:
            raise ImportError("searcher=optuna needs optuna: `pip install optuna`") from exc
        super().__init__(metric=metric, mode=mode)
        self.space = space if isinstance(space, SearchSpace) else SearchSpace.from_spec(space)
        dists: dict[str, Any] = {}
        for p in self.space.params:
            if isinstance(p, Choice):
                dists[p.name] = optuna.distributions.CategoricalDistribution(list(range(len(p.values))))
            else:
                dists[p.name] = optuna.distributions.FloatDistribution(0.0, 1.0)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=num_startup if num_startup is not None else max(4, 2 * self.space.dim)
        )
        self.inner = OptunaSearch(space=dists, metric=metric, mode=mode, sampler=sampler)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        self.inner.set_search_properties(self._metric, self._mode, {}, **spec)
        return True

    def _to_config(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        config = {}
        for p in self.space.params:
            v = raw[p.name]
            config[p.name] = p.values[int(v)] if isinstance(p, Choice) else p.from_unit(float(v))
        return config

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        raw = self.inner.suggest(trial_id)
        if raw is None or raw == Searcher.FINISHED:
            return raw
        return self._to_config(raw)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.inner.on_trial_complete(trial_id, copy.copy(result), error)

    def save(self, checkpoint_path: str) -> None:
        self.inner.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.inner.restore(checkpoint_path)
