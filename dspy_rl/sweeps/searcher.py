"""The machinery shared by the cost-aware Pareto searchers (:mod:`.protein`, :mod:`.carbs`) as a Ray Tune Searcher.

What lives here (and not in the algorithm files):

* Tune integration: ``suggest`` / ``on_trial_result`` / ``on_trial_complete``, ``set_search_properties``,
  ``save`` / ``restore`` (every observation, pending trial, the Sobol position, the RNG and the GP fits are kept,
  so ``Tuner.restore`` continues the sweep with the same model).
* Observations: each finished trial becomes ``(x in unit cube, score, cost)``; errored trials or trials without a
  finite metric become failures.
* Quasi-random warm-up: the first ``num_warmup`` suggestions are scrambled Sobol points.
* Fidelity (optional): with ``fidelity=<parameter>`` (the searched parameter that sets a trial's budget, e.g.
  ``total_env_steps``) the warm-up runs every Sobol point at that parameter's cheapest value; after each model-based
  proposal the budget is lowered to the cheapest level the surrogate is still uncertain about
  (:func:`~dspy_rl.sweeps.fidelity.cheapest_uncertain_level`), the same rule for every subclass.
* Surrogates: one :class:`~dspy_rl.sweeps.gp.ExactGP` for the score (maximize orientation) and one for log-cost.
  With a fidelity parameter the score GP's kernel has a part shared by every budget, so cheap trials inform the
  model about the same configurations at large budgets.
* Pending trials: a "kriging believer" -- each running trial is added to both GPs as a fantasy observation at the
  model's own prediction, which collapses the variance there, so parallel suggestions spread out.
* Failures: a kernel-smoothed Beta estimate of the probability that a trial at ``x`` succeeds, multiplied into
  the acquisition, so points near failed trials are proposed less.

Subclasses implement :meth:`CostAwareSearcher._propose`, the algorithm: which candidates to score and how.
"""

from __future__ import annotations

import copy
import logging
import math
import pickle
from abc import abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from ray.tune.search import Searcher

from dspy_rl.sweeps.fidelity import cheapest_uncertain_level, next_level_up
from dspy_rl.sweeps.gp import ExactGP, GPHyper
from dspy_rl.sweeps.spaces import SearchSpace, SpaceError

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class Observation:
    """One finished trial. ``score`` is the raw metric (not sign-flipped); ``None`` with ``failed``."""

    x: list[float]
    config: dict[str, Any]
    score: float | None
    cost: float | None
    failed: bool = False
    trial_id: str | None = None


@dataclass
class ModelContext:
    """What :meth:`CostAwareSearcher._propose` gets: data in the maximize orientation plus fitted surrogates."""

    x: np.ndarray  # (n, d) unit-cube inputs of successful observations
    y: np.ndarray  # (n,) scores, sign-flipped for mode=min so larger is better
    log_cost: np.ndarray  # (n,)
    pending: np.ndarray  # (p, d) inputs of running trials (already fantasized into the GPs)
    score_gp: ExactGP
    cost_gp: ExactGP
    step: int  # index of this model-based suggestion (drives cost-target cycling)
    rng: np.random.Generator
    trend: Callable[[np.ndarray], np.ndarray]  # score = trend(log_cost) + score GP (residual)
    extra: dict[str, Any] = field(default_factory=dict)


def _finite(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
    )


class CostAwareSearcher(Searcher):
    """Base class: a GP-based, cost-aware Tune searcher over a :class:`SearchSpace`.

    Args:
        space: the search space (a :class:`SearchSpace` or its ``{name: {space: ..}}`` spec).
        metric: the score key in trial results; ``mode`` ``"max"`` or ``"min"``.
        cost_metric: the cost key in trial results (e.g. ``"wall_s"``, ``"env_steps"``, ``"time_total_s"``).
        num_warmup: quasi-random Sobol suggestions before the model is used (default ``max(4, 2 * dim)``).
        max_suggestion_cost: never propose points whose predicted cost exceeds this (model phase only).
        seed: seeds Sobol scrambling and candidate sampling.
        kernel: ``"matern52"`` or ``"rbf"``.
        num_candidates: candidates scored by the acquisition per suggestion.
        failure_radius: lengthscale (unit cube) over which a failed trial lowers the predicted success.
        fidelity: name of the searched parameter that sets each trial's budget (multi-fidelity mode), or None.
            The warm-up is then cheap (that parameter at its minimum); its default size is ``max(4, dim // 2 + 1)``.
        fidelity_xi: multi-fidelity mode: the uncertainty (fraction of the score GP's prior std, at equal cost) a
            cheaper budget level needs to be chosen over the proposed one; see :mod:`.fidelity`.
    """

    name = "cost_aware"

    def __init__(
        self,
        space: SearchSpace | Mapping[str, Mapping[str, Any]] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        cost_metric: str = "wall_s",
        num_warmup: int | None = None,
        max_suggestion_cost: float | None = None,
        seed: int = 0,
        kernel: str = "matern52",
        num_candidates: int = 512,
        failure_radius: float = 0.15,
        fidelity: str | None = None,
        fidelity_xi: float = 0.5,
    ):
        if mode is not None and mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r}; use 'max' or 'min'")
        super().__init__(metric=metric, mode=mode)
        if not isinstance(cost_metric, str) or not cost_metric:
            raise ValueError("cost_metric must be the name of a result key, e.g. 'wall_s' or 'env_steps'")
        if num_warmup is not None and num_warmup < 1:
            raise ValueError(f"num_warmup={num_warmup} must be >= 1")
        if max_suggestion_cost is not None and not max_suggestion_cost > 0:
            raise ValueError(f"max_suggestion_cost={max_suggestion_cost} must be > 0 (or None for no limit)")
        if num_candidates < 8:
            raise ValueError(f"num_candidates={num_candidates} must be >= 8")
        if not failure_radius > 0:
            raise ValueError(f"failure_radius={failure_radius} must be > 0")
        if not fidelity_xi > 0:
            raise ValueError(f"fidelity_xi={fidelity_xi} must be > 0")
        self._space: SearchSpace | None = None
        self.cost_metric = cost_metric
        self._num_warmup_arg = num_warmup
        self.max_suggestion_cost = max_suggestion_cost
        self.seed = int(seed)
        self.kernel = kernel
        self.num_candidates = int(num_candidates)
        self.failure_radius = float(failure_radius)
        self.fidelity = fidelity
        self.fidelity_xi = float(fidelity_xi)
        self.observations: list[Observation] = []
        self._pending: dict[str, list[float]] = {}
        self._last_result: dict[str, dict[str, float]] = {}
        self._sobol_drawn = 0
        self._model_steps = 0
        self._rng = np.random.default_rng(self.seed)
        self._score_gp = ExactGP(kernel=kernel)
        self._cost_gp = ExactGP(kernel=kernel)
        self._fitted_on = -1  # number of successful observations the GP hyperparameters were fitted on
        if space is not None:
            self._set_space(space)

    # ------------------------------------------------------------------------------------------ configuration
    def _set_space(self, space: SearchSpace | Mapping[str, Mapping[str, Any]]) -> None:
        self._space = space if isinstance(space, SearchSpace) else SearchSpace.from_spec(space)
        if self.fidelity is not None and self.fidelity not in self._space.names:
            raise SpaceError(
                f"fidelity={self.fidelity!r} is not a searched parameter; choose one of {self._space.names}"
            )
        # The score GP shares part of its signal across budgets (see :mod:`.gp`); log-cost needs no such help.
        self._score_gp.fidelity_dim = self.fidelity_index

    @property
    def fidelity_index(self) -> int | None:
        """Position of the fidelity parameter in the unit vector (None without one)."""
        return None if self.fidelity is None else self.space.names.index(self.fidelity)

    def fidelity_levels(self, num: int = 5, max_discrete: int = 16) -> np.ndarray:
        """The unit-cube budget levels of the fidelity parameter, cheapest first: every value of a discrete one with
        at most ``max_discrete`` values (e.g. pow2 8192..524288: 7 levels), else ``num`` spread over the range."""
        i = self.fidelity_index
        if i is None:
            raise RuntimeError("no fidelity parameter")
        param = self.space.params[i]
        levels = np.unique(np.round(param.snap_unit(np.linspace(0.0, 1.0, 257)), 12))
        if len(levels) > max_discrete:  # continuous, or many discrete values
            levels = np.unique(np.round(param.snap_unit(np.linspace(0.0, 1.0, num)), 12))
        return levels

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            raise RuntimeError(
                f"{type(self).__name__} has no search space; pass space=... to the constructor"
            )
        return self._space

    @property
    def num_warmup(self) -> int:
        if self._num_warmup_arg is not None:
            return self._num_warmup_arg
        if self.fidelity is not None:  # cheap points, but each warm-up trial still costs: about half as many
            return max(4, self.space.dim // 2 + 1)
        return max(4, 2 * self.space.dim)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take ``metric``/``mode`` from the TuneConfig when not given; the space comes from the constructor."""
        if self._metric is None and metric:
            self._metric = metric
        if self._mode is None and mode:
            if mode not in ("max", "min"):
                raise ValueError(f"mode={mode!r}; use 'max' or 'min'")
            self._mode = mode
        return self._space is not None and self._metric is not None and self._mode is not None

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        # Pending trials are handled by the believer model whatever the limit; ConcurrencyLimiter does the gating.
        return False

    # ----------------------------------------------------------------------------------------------- suggest
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._metric is None or self._mode is None:
            raise RuntimeError(
                f"{type(self).__name__} needs metric and mode: pass them to the searcher or to tune.TuneConfig"
            )
        x = self.space.snap(self._next_point())
        self._pending[trial_id] = [float(v) for v in x]
        config = self.space.from_unit(x)
        logger.debug("suggest %s -> %s", trial_id, config)
        return copy.deepcopy(config)

    def _successes(self) -> list[Observation]:
        return [o for o in self.observations if not o.failed]

    def _next_point(self) -> np.ndarray:
        ok = self._successes()
        if len(self.observations) + len(self._pending) < self.num_warmup or len(ok) < 2:
            return self._sobol_point()
        ctx = self._model_context(ok)
        x = np.clip(np.asarray(self._propose(ctx), dtype=np.float64), 0.0, 1.0)
        if self.fidelity is not None:
            i, levels = self.fidelity_index, self.fidelity_levels()
            # Finished trials only: with several trials in flight the budget still climbs on evidence, one level
            # above the dearest result, not one level per pending trial.
            run = [o.x[i] for o in self.observations]
            x[i] = cheapest_uncertain_level(
                x,
                i,
                levels,
                lambda cands: self._predict(ctx, cands),
                ctx.score_gp.prior_std,
                ceiling=next_level_up(levels, np.array(run)),
                xi=self.fidelity_xi,
            )
            logger.debug("model step %d: budget level %.3f", ctx.step, x[self.fidelity_index])
        self._model_steps += 1
        return x

    def _sobol_point(self) -> np.ndarray:
        engine = torch.quasirandom.SobolEngine(dimension=self.space.dim, scramble=True, seed=self.seed)
        if self._sobol_drawn:
            engine.fast_forward(self._sobol_drawn)
        self._sobol_drawn += 1
        x = engine.draw(1, dtype=torch.float64)[0].numpy()
        if self.fidelity is not None:  # multi-fidelity warm-up: every point at the cheapest budget
            x[self.fidelity_index] = 0.0
        return x

    def _model_context(self, ok: list[Observation]) -> ModelContext:
        x = np.array([o.x for o in ok], dtype=np.float64)
        sign = 1.0 if self._mode == "max" else -1.0
        y = sign * np.array([o.score for o in ok], dtype=np.float64)
        log_cost = np.log(np.array([max(float(o.cost), 1e-12) for o in ok], dtype=np.float64))
        # Refit the GP hyperparameters on every new observation early, then every ~15% more data (the fit is
        # warm-started and moves little); in between, the GPs are re-conditioned on all data with the last fit.
        n = len(ok)
        refit = self._fitted_on < 0 or (n != self._fitted_on and (n < 12 or n >= 1.15 * self._fitted_on))
        trend = self._score_trend(y, log_cost)
        resid = y - trend(log_cost)
        self._score_gp.fit(torch.from_numpy(x), torch.from_numpy(resid), refit=refit)
        self._cost_gp.fit(torch.from_numpy(x), torch.from_numpy(log_cost), refit=refit)
        if refit:
            self._fitted_on = len(ok)
        pending = np.array(list(self._pending.values()), dtype=np.float64).reshape(-1, self.space.dim)
        if len(pending):
            xp = torch.from_numpy(pending)
            y_fant = self._score_gp.predict(xp)[0]
            c_fant = self._cost_gp.predict(xp)[0]
            xa = torch.cat([torch.from_numpy(x), xp])
            self._score_gp.condition(xa, torch.cat([torch.from_numpy(resid), y_fant]))
            self._cost_gp.condition(xa, torch.cat([torch.from_numpy(log_cost), c_fant]))
        return ModelContext(
            x=x,
            y=y,
            log_cost=log_cost,
            pending=pending,
            score_gp=self._score_gp,
            cost_gp=self._cost_gp,
            step=self._model_steps,
            rng=self._rng,
            trend=trend,
        )

    def _score_trend(self, y: np.ndarray, log_cost: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Part of the score explained by cost alone; the score GP models the rest. Default: none (zero)."""
        return np.zeros_like

    @abstractmethod
    def _propose(self, ctx: ModelContext) -> np.ndarray:
        """Return the next point (unit cube, shape (dim,)) given the fitted surrogates."""

    # ------------------------------------------------------------------------------- helpers for subclasses
    def _snap_all(self, cands: np.ndarray) -> np.ndarray:
        return self.space.snap_batch(cands)

    def _predict(self, ctx: ModelContext, cands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Score mean (trend at the predicted cost plus GP residual), score std and log-cost mean at ``cands``."""
        c = torch.from_numpy(cands)
        mu, sd = ctx.score_gp.predict(c)
        lc = ctx.cost_gp.predict(c)[0].numpy()
        return mu.numpy() + ctx.trend(lc), sd.numpy(), lc

    def success_probability(self, cands: np.ndarray) -> np.ndarray:
        """Kernel-smoothed Beta(0.9, 0.1)-prior estimate of P(trial succeeds) at each candidate."""
        if not self.observations:
            return np.full(len(cands), 0.9)
        xs = np.array([o.x for o in self.observations], dtype=np.float64)
        ok = np.array([0.0 if o.failed else 1.0 for o in self.observations])
        d2 = ((cands[:, None, :] - xs[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * d2 / self.failure_radius**2)
        return (0.9 + w @ ok) / (1.0 + w.sum(1))

    def _penalties(self, ctx: ModelContext, cands: np.ndarray, log_cost: np.ndarray) -> np.ndarray:
        """Multiplicative factor in [0, 1]: success probability, zero over budget or on an already-run point."""
        factor = self.success_probability(cands)
        if self.max_suggestion_cost is not None:
            factor = np.where(log_cost > math.log(self.max_suggestion_cost), 0.0, factor)
        taken = [o.x for o in self.observations] + list(self._pending.values())
        if taken:
            t = np.array(taken, dtype=np.float64)
            dmin = np.sqrt(((cands[:, None, :] - t[None, :, :]) ** 2).sum(-1)).min(1)
            factor = np.where(dmin < 1e-6, 0.0, factor)
        return factor

    def _pick(
        self, cands: np.ndarray, acq: np.ndarray, factor: np.ndarray, log_cost: np.ndarray
    ) -> np.ndarray:
        """argmax of the acquisition; if every candidate is excluded, the cheapest non-duplicate one."""
        acq = np.where(np.isfinite(acq), acq, -np.inf)
        if np.any(factor > 0) and np.isfinite(acq[factor > 0]).any():
            masked = np.where(factor > 0, acq, -np.inf)
            return cands[int(np.argmax(masked))]
        logger.warning(
            "%s: every candidate is over max_suggestion_cost=%s or already tried; proposing the cheapest one",
            type(self).__name__,
            self.max_suggestion_cost,
        )
        return cands[int(np.argmin(log_cost))]

    # ------------------------------------------------------------------------------------------ observations
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        keep = {k: result[k] for k in (self._metric, self.cost_metric) if k in result and _finite(result[k])}
        if keep:
            self._last_result.setdefault(trial_id, {}).update(keep)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        x = self._pending.pop(trial_id, None)
        last = self._last_result.pop(trial_id, {})
        if x is None:
            config = (result or {}).get("config")
            if not isinstance(config, Mapping) or self.space.validate(config):
                logger.warning(
                    "%s: result for unknown trial %s without a usable config; ignored", self.name, trial_id
                )
                return
            x = [float(v) for v in self.space.to_unit(config)]
        config = self.space.from_unit(np.asarray(x))
        merged = {**last, **{k: v for k, v in (result or {}).items() if _finite(v)}}
        score = merged.get(self._metric)
        cost = merged.get(self.cost_metric)
        if error or score is None:
            if not error:
                logger.warning(
                    "trial %s finished without a finite %r (keys: %s); counted as a failure",
                    trial_id,
                    self._metric,
                    sorted((result or {}).keys())[:20],
                )
            self.observations.append(
                Observation(x=x, config=config, score=None, cost=cost, failed=True, trial_id=trial_id)
            )
            return
        if cost is None:
            raise KeyError(
                f"trial {trial_id} reported no finite cost {self.cost_metric!r}; report it from the trainable "
                f"or set cost_metric to one of the reported keys: {sorted((result or {}).keys())[:20]}"
            )
        self.observations.append(
            Observation(
                x=x, config=config, score=float(score), cost=max(float(cost), 1e-12), trial_id=trial_id
            )
        )

    def observe(
        self, config: Mapping[str, Any], score: float | None, cost: float | None, failed: bool = False
    ) -> None:
        """Record a finished evaluation directly (no Tune): ``score=None`` or ``failed=True`` for a failure."""
        bad = self.space.validate(config)
        if bad:
            raise SpaceError(f"observe(): parameters {bad} are missing or outside the search space")
        x = [float(v) for v in self.space.to_unit(config)]
        for tid, px in list(self._pending.items()):  # the matching pending suggestion (direct-use loops)
            if np.allclose(px, x):
                del self._pending[tid]
                break
        if failed or score is None or not _finite(score):
            self.observations.append(
                Observation(x=x, config=dict(config), score=None, cost=cost, failed=True)
            )
            return
        if cost is None or not _finite(cost) or cost < 0:
            raise ValueError(f"observe(): cost={cost!r} must be a finite number >= 0")
        self.observations.append(
            Observation(x=x, config=dict(config), score=float(score), cost=max(float(cost), 1e-12))
        )

    # ------------------------------------------------------------------------------------------ save/restore
    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "class": type(self).__name__,
            "space": self._space.spec() if self._space is not None else None,
            "metric": self._metric,
            "mode": self._mode,
            "cost_metric": self.cost_metric,
            "observations": [asdict(o) for o in self.observations],
            "pending": dict(self._pending),
            "last_result": dict(self._last_result),
            "sobol_drawn": self._sobol_drawn,
            "model_steps": self._model_steps,
            "rng": self._rng.bit_generator.state,
            "score_gp": asdict(self._score_gp.hyper) if self._score_gp.hyper else None,
            "cost_gp": asdict(self._cost_gp.hyper) if self._cost_gp.hyper else None,
            "seed": self.seed,
            "fidelity": self.fidelity,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"searcher state version {state.get('version')} != {STATE_VERSION}; cannot restore"
            )
        if state.get("class") != type(self).__name__:
            raise ValueError(f"searcher state was saved by {state.get('class')}, not {type(self).__name__}")
        if state["space"] is not None:
            saved = SearchSpace.from_spec(state["space"])
            if self._space is not None and self._space.spec() != saved.spec():
                raise ValueError(
                    "the saved searcher state has a different search space than this searcher: "
                    f"saved {saved.spec()} vs now {self._space.spec()}; restore with the same sweep config"
                )
            self._set_space(saved)
        self._metric = state["metric"] or self._metric
        self._mode = state["mode"] or self._mode
        self.cost_metric = state["cost_metric"]
        self.observations = [Observation(**o) for o in state["observations"]]
        self._pending = dict(state["pending"])
        self._last_result = dict(state["last_result"])
        self._sobol_drawn = int(state["sobol_drawn"])
        self._model_steps = int(state["model_steps"])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self.seed = int(state["seed"])
        if state.get("fidelity", self.fidelity) != self.fidelity:
            raise ValueError(
                f"the saved searcher state has fidelity={state.get('fidelity')!r}, this searcher "
                f"{self.fidelity!r}; restore with the same sweep config"
            )
        self._score_gp.hyper = GPHyper(**state["score_gp"]) if state["score_gp"] else None
        self._cost_gp.hyper = GPHyper(**state["cost_gp"]) if state["cost_gp"] else None
        self._fitted_on = len(self._successes()) if self._score_gp.hyper else -1

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
        logger.info(
            "%s restored %d observations and %d pending trials from %s",
            type(self).__name__,
            len(self.observations),
            len(self._pending),
            checkpoint_path,
        )
