"""Cost-aware hyperparameter sweeps on Ray Tune: search spaces, GP surrogates, Protein/CARBS-style searchers."""

from dspy_rl.sweeps.carbs import CarbsSearcher
from dspy_rl.sweeps.protein import ProteinSearcher
from dspy_rl.sweeps.registry import SEARCHERS, make_searcher
from dspy_rl.sweeps.searcher import CostAwareSearcher, Observation
from dspy_rl.sweeps.spaces import SearchSpace, SpaceError

__all__ = [
    "SEARCHERS",
    "CarbsSearcher",
    "CostAwareSearcher",
    "Observation",
    "ProteinSearcher",
    "SearchSpace",
    "SpaceError",
    "make_searcher",
]
