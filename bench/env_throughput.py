"""ToolEnv throughput: env steps/s of the Rust batched env vs the Python reference vs Gymnasium's SyncVectorEnv.

Contenders, all on the same suite with uniformly random valid (masked) actions:
  rust_1t     dspy_rl._rust_env.VecToolEnv, num_threads=1 (one core)
  rust_all    the same with num_threads=0 (all cores; rayon at 1024 envs and more)
  python_ref  dspy_rl.envs.reference.PyVecToolEnv (pure Python + numpy)
  gym_sync    gymnasium.vector.SyncVectorEnv over N single-env Gymnasium adapters (dspy_rl.envs.gym_env.ToolGymEnv,
              Rust core with num_envs=1), the usual way to batch a Gymnasium env

Only the step call is timed (action sampling is excluded for every contender): wall-clock steps/s per contender,
plus, for rust_1t, steps per CPU second of the stepping thread ("1t/cpu"), i.e. the per-core speed even when other
processes share the cores. Ratios are of wall-clock rates. Prints a table and writes JSON.

    python bench/env_throughput.py                      # batch sizes 1, 4, 16, ..., 4096
    python bench/env_throughput.py --batch-sizes 1024 --min-time 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dspy_rl.envs import VecToolEnv
from dspy_rl.envs.baselines import random_masked

CONTENDERS = ("rust_1t", "rust_all", "python_ref", "gym_sync")
# Extra column: rust_1t steps per CPU second of the stepping thread (its per-core speed on a shared machine).
CPU_COLUMN = "rust_1t_per_cpu_s"


def _time_vec(env, min_time: float, min_calls: int, rng: np.random.Generator) -> tuple[float, float, int]:
    """Step a VecToolEnv-like env for at least ``min_time`` seconds of step time.

    Returns (wall seconds, CPU seconds of the calling thread, env steps). For a single-threaded env the thread's
    CPU time is the time it actually ran, so steps per CPU second is its per-core speed even on a busy machine.
    """
    for _ in range(3):  # warm-up
        env.step(random_masked(env.tool_mask, rng), random_masked(env.arg_mask, rng))
    elapsed, cpu, calls = 0.0, 0.0, 0
    while elapsed < min_time or calls < min_calls:
        tools, args = random_masked(env.tool_mask, rng), random_masked(env.arg_mask, rng)
        c0, t0 = time.thread_time(), time.perf_counter()
        env.step(tools, args)
        elapsed += time.perf_counter() - t0
        cpu += time.thread_time() - c0
        calls += 1
    return elapsed, cpu, calls * env.num_envs


def _make_gym_sync(num_envs: int, suite: str, seed: int):
    import gymnasium as gym

    from dspy_rl.envs.gym_env import ToolGymEnv

    return gym.vector.SyncVectorEnv(
        [lambda i=i: ToolGymEnv(suite=suite, seed=seed + i, backend="rust") for i in range(num_envs)]
    )


def _time_gym(venv, num_tools: int, min_time: float, min_calls: int, rng) -> tuple[float, int]:
    obs, _ = venv.reset(seed=0)

    def actions(obs) -> np.ndarray:
        mask = obs["action_mask"].astype(bool)
        return np.stack(
            [random_masked(mask[:, :num_tools], rng), random_masked(mask[:, num_tools:], rng)], axis=1
        )

    for _ in range(3):
        obs, *_ = venv.step(actions(obs))
    elapsed, calls = 0.0, 0
    while elapsed < min_time or calls < min_calls:
        act = actions(obs)
        t0 = time.perf_counter()
        obs, *_ = venv.step(act)
        elapsed += time.perf_counter() - t0
        calls += 1
    return elapsed, calls * venv.num_envs


def run(batch_sizes: list[int], suite: str, min_time: float, contenders: tuple[str, ...]) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for n in batch_sizes:
        row: dict = {"batch": n}
        for name in contenders:
            makers: dict[str, Callable[[], object]] = {
                "rust_1t": lambda n=n: VecToolEnv(n, suite, seed=0, num_threads=1, backend="rust"),
                "rust_all": lambda n=n: VecToolEnv(n, suite, seed=0, num_threads=0, backend="rust"),
                "python_ref": lambda n=n: VecToolEnv(n, suite, seed=0, backend="python"),
            }
            if name == "gym_sync":
                venv = _make_gym_sync(n, suite, 0)
                num_tools = venv.single_action_space.nvec[0]
                seconds, steps = _time_gym(venv, int(num_tools), min_time, 3, rng)
                venv.close()
            else:
                seconds, cpu_seconds, steps = _time_vec(makers[name](), min_time, 3, rng)
                if name == "rust_1t":
                    row["rust_1t_per_cpu_s"] = steps / max(cpu_seconds, 1e-9)
            row[name] = steps / seconds
        rows.append(row)
        print(_format_row(row, contenders), flush=True)
    return rows


def _format_row(row: dict, contenders: tuple[str, ...]) -> str:
    cells = [f"{row['batch']:>6}"] + [f"{row[c] / 1e6:>11.3f}" for c in contenders]
    if CPU_COLUMN in row:
        cells.append(f"{row[CPU_COLUMN] / 1e6:>11.3f}")
    if "python_ref" in row and "rust_1t" in row:
        cells.append(f"{row['rust_1t'] / row['python_ref']:>9.0f}x")
    if "python_ref" in row and "rust_all" in row:
        cells.append(f"{row['rust_all'] / row['python_ref']:>9.0f}x")
    if "gym_sync" in row and "rust_all" in row:
        cells.append(f"{row['rust_all'] / row['gym_sync']:>9.0f}x")
    return " ".join(cells)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    parser.add_argument("--suite", default="default")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds of step time per measurement")
    parser.add_argument("--skip-gym", action="store_true", help="leave out gymnasium SyncVectorEnv")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "env_throughput.json")
    ns = parser.parse_args(argv)
    if any(n < 1 for n in ns.batch_sizes) or ns.min_time <= 0:
        parser.error("batch sizes and --min-time must be positive")
    contenders = tuple(c for c in CONTENDERS if not (ns.skip_gym and c == "gym_sync"))
    header = [f"{'batch':>6}"] + [f"{c + ' M/s':>11}" for c in contenders]
    if "rust_1t" in contenders:
        header.append(f"{'1t/cpu M/s':>11}")
    header += [f"{'1t/py':>10}", f"{'all/py':>10}"] + (
        [f"{'all/gym':>10}"] if "gym_sync" in contenders else []
    )
    print(
        f"ToolEnv steps/s, suite={ns.suite}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print(" ".join(header), flush=True)
    rows = run(ns.batch_sizes, ns.suite, ns.min_time, contenders)
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "env_throughput",
        "unit": "env steps per second",
        "suite": ns.suite,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "min_time_s": ns.min_time,
        "command": "python bench/env_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "rows": rows,
    }
    ns.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
