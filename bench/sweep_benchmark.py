"""Sweep benchmark: cumulative cost to reach 95% of the best score, ours (protein, carbs) vs random and Optuna.

    python bench/sweep_benchmark.py                          # 3 synthetic objectives x 5 seeds, all searchers
    python bench/sweep_benchmark.py --seeds 8 --objectives branin,hartmann6,ppo_like
    python bench/sweep_benchmark.py --ppo --ppo-seeds 5      # plus a real PPO sweep (conf/sweep/ppo_cost.yaml)
    python bench/sweep_benchmark.py --objectives "" --ppo --ppo-sweep ppo_budget --ppo-seed-offset 5 --ppo-threshold 0.95

Every searcher runs in the same process against the same objective, one trial at a time (``--parallel`` keeps
several outstanding). For each (objective, searcher, seed) we record the cumulative cost of all trials up to and
including the first one scoring >= 95% of the best score (synthetic: the known optimum 1.0; PPO: the best eval success
rate any searcher found on that seed, or with ``--ppo-threshold`` a fixed threshold, e.g. 0.95 = 95% of the largest
possible success rate, at which each PPO run stops). A run that never gets there within its trial cap counts its
whole cost and is marked censored (a lower bound, reported with ``>=``). Ratios are of medians over seeds; the table also shows
the geometric mean of per-seed ratios against random (paired by seed).

Writes bench/results/sweep_benchmark.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# One thread per BLAS/OpenMP pool: on a shared 2-core machine, busy-waiting worker pools made PPO trials ~20x slower.
# (Set before numpy/torch load them; the cost measured here, env steps, does not depend on it.)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dspy_rl.sweeps.direct import TrialRecord, cost_to_reach, run_direct  # noqa: E402
from dspy_rl.sweeps.objectives import OBJECTIVES, SyntheticObjective  # noqa: E402
from dspy_rl.sweeps.registry import make_searcher  # noqa: E402
from dspy_rl.sweeps.spaces import SearchSpace  # noqa: E402

log = logging.getLogger("sweep_benchmark")


def run_one(
    searcher_name: str,
    objective: Callable,
    space: SearchSpace,
    seed: int,
    trials: int,
    parallel: int,
    stop_score: float | None,
    options: Mapping[str, Any] | None = None,
) -> tuple[list[TrialRecord], float]:
    # ``options`` (the declared ``fidelity``) go to protein only: carbs refuses a fidelity, random and Optuna take
    # no options (they search the budget as an ordinary parameter).
    opts = dict(options or {}) if searcher_name == "protein" else {}
    searcher = make_searcher(searcher_name, space, "score", "max", "cost", seed=seed, **opts)
    t0 = time.perf_counter()
    # With a known threshold nothing after the first trial that reaches it changes the measurement.
    records = run_direct(searcher, objective, trials, parallel=parallel, stop_score=stop_score)
    return records, time.perf_counter() - t0


def summarize(
    results: dict[str, list[dict[str, Any]]], reference: str = "random"
) -> dict[str, dict[str, Any]]:
    out = {}
    ref = results.get(reference)
    for name, runs in results.items():
        costs = [r["cost_to_95"] for r in runs]
        row = {
            "median_cost": statistics.median(costs),
            "mean_cost": statistics.fmean(costs),
            "censored": sum(r["censored"] for r in runs),
            "reached": sum(not r["censored"] for r in runs),
            "median_best": statistics.median(r["best"] for r in runs),
            "searcher_s": statistics.fmean(r["searcher_s"] for r in runs),
        }
        if ref is not None:
            ratios = [a["cost_to_95"] / b["cost_to_95"] for a, b in zip(runs, ref, strict=True)]
            row["geomean_ratio_vs_random"] = math.exp(statistics.fmean(math.log(r) for r in ratios))
        out[name] = row
    return out


def record_rows(recs: list[TrialRecord]) -> list[list[Any]]:
    """Trial records as JSON rows ``[trial_id, config, score, cost]`` (read back by :func:`load_reuse`)."""
    return [[r.trial_id, r.config, r.score, r.cost] for r in recs]


def bench_objective(
    label: str,
    objective: Callable,
    space: SearchSpace,
    threshold: float | None,
    searchers: list[str],
    seeds: list[int],
    caps: Mapping[str, int],
    parallel: int,
    options: Mapping[str, Any] | None = None,
    reuse: Mapping[str, Mapping[int, tuple[list[TrialRecord], float]]] | None = None,
    partial: Path | None = None,
) -> dict[str, Any]:
    raw: dict[str, list[list[TrialRecord]]] = {s: [] for s in searchers}
    times: dict[str, list[float]] = {s: [] for s in searchers}
    for seed in seeds:
        for s in searchers:
            if reuse and seed in reuse.get(s, {}):  # this searcher's trials from an earlier identical run
                recs, dt = reuse[s][seed]
                raw[s].append(recs)
                times[s].append(dt)
                log.info("%s seed %d %-8s reused %d trials", label, seed, s, len(recs))
                continue
            recs, dt = run_one(s, objective, space, seed, caps[s], parallel, threshold, options)
            if partial is not None:  # every finished run, as it finishes (long PPO benchmarks)
                with partial.open("a") as f:
                    row = {"label": label, "searcher": s, "seed": seed, "s": dt, "records": record_rows(recs)}
                    f.write(json.dumps(row) + "\n")
            raw[s].append(recs)
            times[s].append(dt)
            best = max((r.score for r in recs if r.score is not None), default=float("nan"))
            log.info("%s seed %d %-8s best %.3f in %d trials (%.1fs)", label, seed, s, best, len(recs), dt)
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in searchers}
    for i, seed in enumerate(seeds):
        if threshold is None:  # unknown optimum: 95% of the best score any searcher found on this seed
            best_any = max(r.score for s in searchers for r in raw[s][i] if r.score is not None)
            thr = 0.95 * best_any
        else:
            thr = threshold
        for s in searchers:
            recs = raw[s][i]
            reached = cost_to_reach(recs, thr)
            results[s].append(
                {
                    "seed": seed,
                    "threshold": thr,
                    "cost_to_95": reached if reached is not None else sum(r.cost for r in recs),
                    "censored": reached is None,
                    "best": max((r.score for r in recs if r.score is not None), default=float("nan")),
                    "trials": len(recs),
                    "failures": sum(r.score is None for r in recs),
                    "searcher_s": times[s][i],
                    "records": record_rows(recs),
                }
            )
    return {"label": label, "runs": results, "summary": summarize(results)}


def print_table(bench: dict[str, Any], ours: str = "protein") -> None:
    summ = bench["summary"]
    print(f"\n== {bench['label']} ==")
    print(
        f"{'searcher':<10} {'median cost to 95%':>20} {'mean':>12} {'reached':>8} {'best(med)':>10} "
        f"{'geo ratio/random':>17} {'s/run':>7}"
    )
    for name, row in summ.items():
        cens = row["censored"]
        med = f"{'>=' if cens * 2 >= len(bench['runs'][name]) else ''}{row['median_cost']:.4g}"
        n = row["reached"] + cens
        print(
            f"{name:<10} {med:>20} {row['mean_cost']:>12.4g} {row['reached']:>4}/{n:<3} {row['median_best']:>10.3f} "
            f"{row.get('geomean_ratio_vs_random', float('nan')):>17.3f} {row['searcher_s']:>7.1f}"
        )
    if ours in summ:
        for peer in ("random", "optuna"):
            if peer in summ:
                print(
                    f"  {ours} / {peer} (median cost to 95%): {summ[ours]['median_cost'] / summ[peer]['median_cost']:.3f}"
                )


class PPOObjective:
    """A real `train` run per config (in-process, no extra actors); cost = training env steps, score = the sweep's
    metric (ppo_cost.yaml: ``eval_success_rate``, the trainer's final evaluation of the trained policy)."""

    def __init__(self, fixed: list[str], run_root: Path, metric: str):
        self.fixed = fixed
        self.run_root = run_root
        self.metric = metric
        self.count = 0

    def __call__(self, config: Mapping[str, Any]) -> tuple[float | None, float]:
        from dspy_rl.sweeps.trainables import trial_overrides
        from dspy_rl.trainer import run_training

        self.count += 1
        run_dir = self.run_root / f"trial_{self.count:04d}"
        try:
            out = run_training(trial_overrides(config, self.fixed, str(run_dir)))
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            log.warning("PPO trial failed at %s: %s", dict(config), exc)
            return None, float(config.get("total_env_steps", 1))
        if self.metric not in out:
            raise KeyError(
                f"train reported no {self.metric!r} (keys: {sorted(out)}); check the sweep's fixed overrides"
            )
        score = out[self.metric]
        log.debug(
            "trial %d: %s=%.3f rolling success_rate=%.3f", self.count, self.metric, score, out["success_rate"]
        )
        # Cost: the env steps trained on (the evaluation's episodes are not part of the budget being searched).
        return (float(score) if math.isfinite(score) else None), float(out["env_steps"])


def load_reuse(
    spec: str, sweep: str, caps: Mapping[str, int], threshold: float | None = None
) -> dict[str, dict[int, tuple[list[TrialRecord], float]]]:
    """PPO trial records of earlier runs of the same sweep, per searcher and seed (only where the caps match).

    ``spec`` is one output JSON (every searcher it holds) or comma-separated ``searcher=path`` entries, which take
    each searcher from its own file (e.g. protein re-run after a searcher change, random/Optuna from before).
    """
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    sources = [e.partition("=")[::2] if "=" in e else ("", e) for e in entries]
    out: dict[str, dict[int, tuple[list[TrialRecord], float]]] = {}
    for only, path in sources:
        prev = json.loads(Path(path).read_text())
        bench = prev["objectives"].get(sweep)
        if bench is None:
            continue
        prev_args = prev["args"]
        for s, runs in bench["runs"].items():
            prev_cap = prev_args["ppo_peer_trials"] if s in ("random", "optuna") else prev_args["ppo_trials"]
            if (only and s != only) or caps.get(s) != prev_cap:
                continue
            if prev_args.get("ppo_threshold") != threshold:  # runs stop at a fixed threshold: not comparable
                continue
            out.setdefault(s, {}).update(
                {
                    r["seed"]: ([TrialRecord(t, c, sc, co) for t, c, sc, co in r["records"]], r["searcher_s"])
                    for r in runs
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objectives", default="branin,hartmann6,ppo_like")
    ap.add_argument("--searchers", default="protein,carbs,random,optuna")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--trials", type=int, default=200, help="trial cap for the GP searchers")
    ap.add_argument("--peer-trials", type=int, default=400, help="trial cap for Optuna")
    ap.add_argument(
        "--random-trials",
        type=int,
        default=20000,
        help="trial cap for random search (free to run; avoids censoring)",
    )
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument(
        "--fidelity",
        action="store_true",
        help="synthetic objectives: give protein each objective's budget parameter as its fidelity (multi-fidelity "
        "mode, as the PPO sweeps declare it); the other searchers search it as an ordinary parameter",
    )
    ap.add_argument(
        "--ppo", action="store_true", help="also run a real PPO sweep (conf/sweep/<--ppo-sweep>.yaml)"
    )
    ap.add_argument("--ppo-sweep", default="ppo_cost", help="the sweep definition of the real PPO sweep")
    ap.add_argument("--ppo-seeds", type=int, default=5, help="number of PPO seeds")
    ap.add_argument(
        "--ppo-seed-offset",
        type=int,
        default=0,
        help="first PPO seed (seeds offset..offset+n-1): tune on one set of seeds, report on another",
    )
    ap.add_argument(
        "--ppo-threshold",
        type=float,
        default=None,
        help="fixed PPO score threshold (e.g. 0.95 for a success rate, whose maximum is 1.0); each run stops at its "
        "first trial that reaches it. Default: 95%% of the best score any searcher found on that seed, no early stop",
    )
    ap.add_argument("--ppo-trials", type=int, default=24, help="PPO trial cap for our searcher")
    ap.add_argument("--ppo-peer-trials", type=int, default=24, help="PPO trial cap for random and Optuna")
    ap.add_argument(
        "--ppo-reuse",
        default=None,
        help="a previous output JSON, or comma-separated searcher=JSON entries: reuse their PPO trials for the "
        "searchers and seeds they have (same sweep and caps), run only the rest (PPO trials are deterministic "
        "given the config; a searcher's trials do not depend on the other searchers)",
    )
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "sweep_benchmark.json"))
    args = ap.parse_args(argv)
    if args.ppo_seeds < 1 or args.ppo_seed_offset < 0:
        ap.error("need --ppo-seeds >= 1 and --ppo-seed-offset >= 0")
    if args.ppo_threshold is not None and not math.isfinite(args.ppo_threshold):
        ap.error("--ppo-threshold must be a finite number")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("dspy_rl", "ray", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    searchers = [s.strip() for s in args.searchers.split(",") if s.strip()]
    if "optuna" in searchers:
        try:
            import optuna  # noqa: F401
        except ImportError:
            print(
                "optuna is not installed: `pip install optuna`, or pass --searchers without it",
                file=sys.stderr,
            )
            return 2
    caps = {
        s: {"random": args.random_trials, "optuna": args.peer_trials}.get(s, args.trials) for s in searchers
    }
    seeds = list(range(args.seeds))
    report: dict[str, Any] = {"args": vars(args), "objectives": {}}
    for name in [o.strip() for o in args.objectives.split(",") if o.strip()]:
        if name not in OBJECTIVES:
            print(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}", file=sys.stderr)
            return 2
        obj: SyntheticObjective = OBJECTIVES[name]
        bench = bench_objective(
            name,
            obj,
            SearchSpace.from_spec(obj.space),
            0.95 * obj.optimum,
            searchers,
            seeds,
            caps,
            args.parallel,
            {"fidelity": obj.fidelity} if args.fidelity and obj.fidelity else None,
        )
        report["objectives"][name] = bench
        print_table(bench)
    if args.ppo:
        import torch

        from dspy_rl.sweeps.config import load_config

        torch.set_num_threads(1)  # one core per trial; the cost (env steps) does not depend on it
        cfg = load_config([f"sweep={args.ppo_sweep}"])
        space = SearchSpace.from_spec(cfg.sweep.parameters)
        run_root = Path(args.out).parent / "ppo_runs" / time.strftime("%Y%m%d-%H%M%S")
        ppo_searchers = [s for s in searchers if s != "carbs"]
        ppo_caps = {
            s: args.ppo_peer_trials if s in ("random", "optuna") else args.ppo_trials for s in ppo_searchers
        }
        reuse = (
            load_reuse(args.ppo_reuse, args.ppo_sweep, ppo_caps, args.ppo_threshold)
            if args.ppo_reuse
            else None
        )
        bench = bench_objective(
            f"{args.ppo_sweep} (real PPO, cost = env steps)",
            PPOObjective(list(cfg.sweep.fixed), run_root, cfg.sweep.metric),
            space,
            args.ppo_threshold,
            ppo_searchers,
            list(range(args.ppo_seed_offset, args.ppo_seed_offset + args.ppo_seeds)),
            ppo_caps,
            1,
            {"fidelity": cfg.sweep.fidelity} if cfg.sweep.fidelity else None,
            reuse,
            Path(args.out).with_suffix(".partial.jsonl"),
        )
        report["objectives"][args.ppo_sweep] = bench
        print_table(bench)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=float))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
