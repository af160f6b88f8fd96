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

from typing import Any

from dspy_rl.cli.help import wants_help
from dspy_rl.sweeps.config import SweepConfig, build_space, load_config
from dspy_rl.sweeps.run import run_sweep

__all__ = ["SweepConfig", "build_space", "format_table", "load_config", "main", "run_sweep"]


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
