"""PPO vs env GRPO vs GiGPO on ToolEnv at equal env steps, in one run.

All train policies A/B/C on the same suite with the same networks through `dspy-rl train` (algo=ppo, algo=grpo,
algo=gigpo), each with its shipped defaults (conf/algo/<name>.yaml); GRPO and GiGPO run each env for one whole
episode per iteration in groups replayed from one Rust env snapshot and have no critic; GiGPO adds step-level
advantages from identical states within a group. Prints, per suite, the success rate reached at equal env-step
marks and the env steps/s of each.

    python bench/grpo_vs_ppo_env.py [--steps 300000] [--suites default] [--seeds 0 1] [--algos ppo grpo gigpo]
    python bench/grpo_vs_ppo_env.py --suites hard expert --steps 1000000 3000000 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def run(algo: str, steps: int, suite: str, seed: int) -> dict[str, Any]:
    """One `dspy-rl train` run (256 envs sampled in the driver); its learning curve and throughput."""
    from dspy_rl.trainer import run_training

    curve: list[tuple[int, float]] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = run_training(
            [
                f"algo={algo}",
                f"env={suite}",
                "env.num_envs=256",
                "runtime.num_env_runners=0",
                f"total_env_steps={steps}",
                f"seed={seed}",
                f"env.seed={seed}",
                "logging.progress_bar=false",
                "logging.plot=false",
                "logging.tensorboard=false",
                f"run_dir={run_dir}",
            ],
            report=lambda m: curve.append((m["env_steps"], m["iter_success_rate"])),
        )
    wall = time.perf_counter() - start
    return {
        "algo": algo,
        "suite": suite,
        "seed": seed,
        "curve": curve,
        "wall_s": wall,
        "env_steps": result["env_steps"],
        "env_steps_per_s": result["env_steps"] / wall,
    }


def success_at(curve: list[tuple[int, float]], mark: int, window: int = 3) -> float:
    """Mean per-iteration success of the last `window` iterations at or before `mark` env steps."""
    # iterations in which no episode ended report NaN (PPO on long episodes): skip them
    pts = [s for step, s in curve if step <= mark and s == s][-window:]
    return sum(pts) / len(pts) if pts else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, nargs="+", default=[300_000], help="env steps per run (one per suite)"
    )
    parser.add_argument("--suites", nargs="+", default=["default"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--algos", nargs="+", default=["ppo", "grpo", "gigpo"])
    parser.add_argument("--out", default="bench/results/grpo_vs_ppo_env.json")
    args = parser.parse_args()
    steps = args.steps * len(args.suites) if len(args.steps) == 1 else args.steps
    if len(steps) != len(args.suites):
        parser.error(f"give one --steps value or one per suite ({len(args.suites)}), got {len(args.steps)}")
    results: dict[str, Any] = {}
    for suite, n in zip(args.suites, steps, strict=True):
        runs = [run(algo, n, suite, seed) for seed in args.seeds for algo in args.algos]
        marks = [n * k // 6 for k in range(1, 7)]
        print(f"\nsuite={suite}, seeds={args.seeds}: success rate at equal env steps (mean over seeds)")
        print(f"{'env steps':>10} " + " ".join(f"{a:>8}" for a in args.algos))
        for mark in marks:
            vals = []
            for algo in args.algos:
                xs = [success_at(r["curve"], mark) for r in runs if r["algo"] == algo]
                vals.append(sum(xs) / len(xs))
            print(f"{mark:>10,} " + " ".join(f"{v:>8.3f}" for v in vals))
        for algo in args.algos:
            sps = [r["env_steps_per_s"] for r in runs if r["algo"] == algo]
            print(f"{suite} {algo}: {sum(sps) / len(sps):,.0f} env steps/s (train loop, in-driver sampling)")
        results[suite] = {"runs": runs, "marks": marks}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
