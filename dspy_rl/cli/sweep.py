"""``dspy-rl sweep``: a cost-aware hyperparameter sweep with Ray Tune (conf/sweep.yaml + conf/sweep/<name>.yaml).

    dspy-rl sweep                                          # PPO sweep with the protein searcher
    dspy-rl sweep sweep=branin searcher=carbs num_samples=40
    dspy-rl sweep --searcher optuna --samples 24 --concurrent 2 run_dir=runs/sweep/x
    dspy-rl sweep run_dir=runs/sweep/x --resume             # continue an interrupted sweep

Each trial is one budgeted training run (or a synthetic objective) that reports the metric and the cost (wall
seconds or env steps). At the end: a results table, the best config, ``results.json`` and ``pareto.png``
(score against cost with the Pareto front) in the run directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from dspy_rl.cli.help import wants_help
from dspy_rl.config import ConfigError, compose, require, to_object
from dspy_rl.sweeps.registry import SEARCHERS, make_searcher
from dspy_rl.sweeps.spaces import SearchSpace, SpaceError

log = logging.getLogger(__name__)

ALIASES = {
    "samples": "num_samples",
    "concurrent": "max_concurrent",
    "space": "sweep",
    "metric": "sweep.metric",
    "cost": "sweep.cost",
    "trials": "num_samples",
    "max_concurrent": "max_concurrent",
}


@dataclass
class SweepDef:
    """One sweep definition: a file of conf/sweep/ (selected with ``sweep=<name>``)."""

    name: str = "sweep"
    """Name of the sweep (its run directory is runs/sweep/<name>-<timestamp> unless run_dir is set)."""
    objective: str = "train"
    """``train`` (one PPO run per trial) or ``synthetic:<name>`` (see dspy_rl/sweeps/objectives.py)."""
    metric: str = "success_rate"
    """Result key to optimize (the trial's last reported value); for PPO sweeps ``eval_success_rate`` (the
    trained policy, evaluated with ``eval_episodes`` from ``fixed``) rather than the rolling
    ``success_rate``."""
    mode: str = "max"
    """``max`` or ``min``."""
    cost: str = "wall_s"
    """Result key that measures a trial's cost: ``wall_s`` or ``env_steps``."""
    fixed: list[str] = field(default_factory=list)
    """Hydra overrides of conf/train.yaml applied to every trial."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Name -> {space: linear|log|pow2|logit|int|choice, min, max | values}."""
    fidelity: str | None = None
    """The searched parameter that sets each trial's budget (e.g. ``total_env_steps``), or None. protein
    then runs its warm-up at its cheapest value and gives each model step the cheapest budget level the
    model is still uncertain about (multi-fidelity, dspy_rl/sweeps/fidelity.py); carbs refuses it; the
    others ignore it."""


@dataclass
class SweepConfig:
    """``conf/sweep.yaml``: searcher settings, trial count and concurrency, output directory."""

    sweep: SweepDef = field(default_factory=SweepDef)
    searcher: str = "protein"
    """Protein | carbs | random | optuna | pufferlib."""
    num_samples: int = 16
    """Trials in total."""
    max_concurrent: int = 2
    """Trials running at once."""
    seed: int = 0
    """Searcher seed."""
    num_warmup: int | None = None
    """Quasi-random suggestions before the model (None: max(4, 2 * number of parameters))."""
    max_suggestion_cost: float | None = None
    """Never propose points predicted to cost more than this (protein/carbs/pufferlib)."""
    cpus_per_trial: float = 1.0
    """CPUs reserved per trial."""
    run_dir: str | None = None
    """Output directory (None: runs/sweep/<sweep name>-<timestamp>)."""
    resume: bool = False
    """Continue the sweep stored in run_dir."""
    ray_address: str | None = None
    """None: local Ray in-process; "auto": a running cluster."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (None: all)."""
    plot: bool = True
    """Write pareto.png."""
    searcher_options: dict[str, Any] = field(default_factory=dict)
    """Extra protein/carbs constructor options."""

    def __post_init__(self) -> None:
        s = self.sweep
        require(self.searcher in SEARCHERS, "searcher", self.searcher, " | ".join(SEARCHERS))
        require(self.num_samples >= 1, "num_samples", self.num_samples, "an int >= 1")
        require(self.max_concurrent >= 1, "max_concurrent", self.max_concurrent, "an int >= 1")
        require(
            self.num_warmup is None or self.num_warmup >= 1, "num_warmup", self.num_warmup, "null or >= 1"
        )
        require(
            self.max_suggestion_cost is None or self.max_suggestion_cost > 0,
            "max_suggestion_cost",
            self.max_suggestion_cost,
            "null or a number > 0",
        )
        require(self.cpus_per_trial > 0, "cpus_per_trial", self.cpus_per_trial, "a number > 0")
        require(s.mode in ("max", "min"), "sweep.mode", s.mode, "max | min")
        require(
            s.objective == "train" or s.objective.startswith("synthetic:"),
            "sweep.objective",
            s.objective,
            "train | synthetic:<name>",
        )
        require(bool(s.metric), "sweep.metric", s.metric, "a reported result key, e.g. success_rate")
        require(bool(s.cost), "sweep.cost", s.cost, "wall_s | env_steps")
        require(
            s.fidelity is None or s.fidelity in s.parameters,
            "sweep.fidelity",
            s.fidelity,
            "null or one of the searched parameters",
        )
        require(
            s.fidelity is None or self.searcher != "carbs",
            "sweep.fidelity",
            s.fidelity,
            "null with searcher=carbs (its cost cap never rises above the observed costs, so it would stay at the "
            "cheapest budget of a fidelity warm-up): set sweep.fidelity=null or use searcher=protein",
        )
        require(
            self.objective != "train" or bool(s.parameters),
            "sweep.parameters",
            s.parameters,
            "a non-empty mapping",
        )
        if self.objective == "train" and s.metric.startswith("eval_"):
            episodes = [
                f.partition("=")[2] for f in s.fixed if f.partition("=")[0].lstrip("+") == "eval_episodes"
            ]
            require(
                bool(episodes) and episodes[-1].isdigit() and int(episodes[-1]) > 0,
                "sweep.metric",
                s.metric,
                "a metric of the trainer's final evaluation together with eval_episodes=<n > 0> in sweep.fixed",
            )
        if self.resume:
            require(
                self.run_dir is not None,
                "resume",
                self.resume,
                "resume=true together with run_dir=<sweep dir>",
            )

    @property
    def objective(self) -> str:
        return self.sweep.objective


def fidelity_option(cfg: SweepConfig) -> dict[str, Any]:
    """``{"fidelity": name}`` for protein when the sweep declares its budget parameter, else nothing."""
    if cfg.sweep.fidelity is None or cfg.searcher != "protein":
        return {}
    return {"fidelity": cfg.sweep.fidelity}


ConfigStore.instance().store(name="sweep_schema", node=SweepConfig)


def load_config(argv: Sequence[str] = ()) -> SweepConfig:
    """Compose conf/sweep.yaml with the command line and validate it."""
    cfg = compose("sweep", argv, ALIASES)
    return to_object(cfg, SweepConfig)


def build_space(cfg: SweepConfig) -> SearchSpace:
    """The search space: ``sweep.parameters``, or a synthetic objective's own space when that is empty."""
    spec = cfg.sweep.parameters
    if not spec and cfg.objective.startswith("synthetic:"):
        from dspy_rl.sweeps.objectives import get_objective

        try:
            spec = get_objective(cfg.objective.split(":", 1)[1]).space
        except KeyError as exc:
            raise ConfigError(f"sweep.objective={cfg.objective!r}: {exc.args[0]}") from exc
    try:
        return SearchSpace.from_spec(spec)
    except SpaceError as exc:
        raise ConfigError(f"sweep.parameters: {exc}") from exc


def build_trainable(cfg: SweepConfig) -> Any:
    from ray import tune

    from dspy_rl.sweeps.trainables import synthetic_trainable, train_trainable

    if cfg.objective == "train":
        fn = tune.with_parameters(train_trainable, fixed=list(cfg.sweep.fixed), metric=cfg.sweep.metric)
    else:
        from dspy_rl.sweeps.objectives import get_objective

        name = cfg.objective.split(":", 1)[1]
        try:
            get_objective(name)
        except KeyError as exc:
            raise ConfigError(f"sweep.objective={cfg.objective!r}: {exc.args[0]}") from exc
        fn = tune.with_parameters(synthetic_trainable, objective=name, metric=cfg.sweep.metric)
    return tune.with_resources(fn, {"cpu": cfg.cpus_per_trial})


def trial_dirname(trial: Any) -> str:
    """Short trial directory names (Tune's default embeds every parameter value)."""
    return f"trial_{trial.trial_id}"


def _rows(result_grid: Any, space: SearchSpace, cfg: SweepConfig) -> list[dict[str, Any]]:
    rows = []
    for r in result_grid:
        metrics = r.metrics or {}
        score = metrics.get(cfg.sweep.metric)
        cost = metrics.get(cfg.sweep.cost)
        ok = r.error is None and isinstance(score, (int, float)) and math.isfinite(score)
        rows.append(
            {
                "trial_id": metrics.get("trial_id", os.path.basename(str(r.path))),
                "config": {k: r.config.get(k) for k in space.names},
                "score": float(score) if ok else None,
                "cost": float(cost) if isinstance(cost, (int, float)) and math.isfinite(cost) else None,
                "status": "ok" if ok else ("error" if r.error is not None else "no metric"),
            }
        )
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict[str, Any]], names: list[str], metric: str, cost: str, mode: str) -> str:
    """A plain-text table of every trial, best first (failures last)."""
    sign = -1.0 if mode == "max" else 1.0
    ordered = sorted(rows, key=lambda r: (r["score"] is None, sign * (r["score"] or 0.0)))
    header = ["trial", *names, metric, cost, "status"]
    body = [
        [
            str(r["trial_id"]),
            *(_fmt(r["config"].get(n)) for n in names),
            _fmt(r["score"]),
            _fmt(r["cost"]),
            r["status"],
        ]
        for r in ordered
    ]
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in body]
    return "\n".join(lines)


def run_sweep(cfg: SweepConfig) -> dict[str, Any]:
    """Run (or resume) the sweep; returns ``{"rows", "best", "run_dir", "plot"}``."""
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    space = build_space(cfg)
    trainable = build_trainable(cfg)
    run_dir = Path(
        cfg.run_dir
        or Path("runs").resolve() / "sweep" / f"{cfg.sweep.name}-{datetime.now():%Y-%m-%d_%H-%M-%S}"
    ).resolve()
    exp_dir = run_dir / "tune"
    started = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if cfg.ray_address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["num_cpus"] = cfg.num_cpus or max(os.cpu_count() or 1, int(math.ceil(cfg.cpus_per_trial)))
        ray.init(address=cfg.ray_address, **kwargs)
        started = True
    try:
        if cfg.resume:
            if not tune.Tuner.can_restore(str(exp_dir)):
                raise ConfigError(f"resume=true but {exp_dir} holds no Tune experiment to continue")
            log.info("resuming the sweep in %s", exp_dir)
            tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_errored=False)
        else:
            if exp_dir.exists() and any(exp_dir.iterdir()):
                raise ConfigError(
                    f"run_dir={run_dir} already holds a sweep; add resume=true or pick a new run_dir"
                )
            searcher = make_searcher(
                cfg.searcher,
                space,
                cfg.sweep.metric,
                cfg.sweep.mode,
                cfg.sweep.cost,
                seed=cfg.seed,
                num_warmup=cfg.num_warmup,
                max_suggestion_cost=cfg.max_suggestion_cost,
                **fidelity_option(cfg),
                **dict(cfg.searcher_options),
            )
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "sweep_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=ConcurrencyLimiter(searcher, max_concurrent=cfg.max_concurrent),
                    metric=cfg.sweep.metric,
                    mode=cfg.sweep.mode,
                    num_samples=cfg.num_samples,
                    reuse_actors=True,
                    trial_dirname_creator=trial_dirname,
                ),
                run_config=tune.RunConfig(
                    name=exp_dir.name, storage_path=str(run_dir), verbose=1, log_to_file=True
                ),
            )
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    rows = _rows(grid, space, cfg)
    return summarize(rows, space, cfg, run_dir)


def summarize(
    rows: list[dict[str, Any]], space: SearchSpace, cfg: SweepConfig, run_dir: Path
) -> dict[str, Any]:
    """Best trial, results.json and the Pareto plot."""
    ok = [r for r in rows if r["score"] is not None and r["cost"] is not None]
    sign = 1.0 if cfg.sweep.mode == "max" else -1.0
    best = max(ok, key=lambda r: sign * r["score"]) if ok else None
    plot_path = None
    if cfg.plot and ok:
        from dspy_rl.sweeps.plotting import plot_pareto

        plot_path = plot_pareto(
            [r["score"] for r in ok],
            [r["cost"] for r in ok],
            run_dir / "pareto.png",
            metric=cfg.sweep.metric,
            cost_label=cfg.sweep.cost,
            mode=cfg.sweep.mode,
            title=f"{cfg.sweep.name}: {cfg.searcher}, {len(rows)} trials",
            failed_costs=[r["cost"] for r in rows if r["score"] is None and r["cost"] is not None],
        )
    out = {"rows": rows, "best": best, "run_dir": str(run_dir), "plot": str(plot_path) if plot_path else None}
    (run_dir / "results.json").write_text(json.dumps(out, indent=2, default=str))
    return out


def main(argv: list[str]) -> int:
    if wants_help(argv):
        from dspy_rl.cli.help import render

        print(render(__doc__, "sweep", SweepConfig))
        return 0
    cfg = load_config(argv)
    out = run_sweep(cfg)
    space = build_space(cfg)
    print(format_table(out["rows"], space.names, cfg.sweep.metric, cfg.sweep.cost, cfg.sweep.mode))
    print()
    if out["best"] is None:
        print(f"no trial reported a finite {cfg.sweep.metric!r} and {cfg.sweep.cost!r}; see {out['run_dir']}")
        return 1
    best = out["best"]
    print(f"best {cfg.sweep.metric}={best['score']:.4g} at {cfg.sweep.cost}={_fmt(best['cost'])}")
    print("best config: " + " ".join(f"{k}={_fmt(v)}" for k, v in best["config"].items()))
    if out["plot"]:
        print(f"Pareto plot: {out['plot']}")
    print(f"results: {out['run_dir']}/results.json")
    return 0
