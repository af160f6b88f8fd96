"""The sweep driver: a Ray Tune run of budgeted trials with one of the searchers (``dspy-rl sweep``)."""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from dspy_rl.config import ConfigError
from dspy_rl.sweeps.config import SweepConfig, build_space, fidelity_option
from dspy_rl.sweeps.registry import make_searcher
from dspy_rl.sweeps.spaces import SearchSpace
from dspy_rl.utils.ray_local import init_ray

log = logging.getLogger(__name__)


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
        init_ray(cfg.ray_address, cfg.node_ip, **kwargs)  # a local instance listens on 127.0.0.1 only
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
