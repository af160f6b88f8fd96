"""Baseline policies of ToolEnv (uniform random over masks, scripted oracle) and a batched evaluator.

``python -m dspy_rl.envs.baselines`` prints oracle and random success rates for every shipped suite.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dspy_rl.envs import VecEnv, VecToolEnv, available_suites

POLICIES = ("random", "oracle")


def random_masked(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random allowed index per row of a boolean mask (every row must allow something)."""
    scores = rng.random(mask.shape)
    scores[~mask] = -1.0
    return scores.argmax(axis=1).astype(np.int64)


def random_actions(env: VecEnv, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random tool among ``tool_mask`` and argument among ``arg_mask``, per env."""
    return random_masked(env.tool_mask, rng), random_masked(env.arg_mask, rng)


@dataclass(frozen=True)
class EvalResult:
    """Outcome of evaluating a policy on completed episodes."""

    suite: str
    policy: str
    episodes: int
    success_rate: float
    mean_return: float
    mean_length: float


def evaluate(
    suite: str | Path = "default",
    policy: str = "oracle",
    episodes: int = 2000,
    num_envs: int = 256,
    seed: int = 0,
    backend: str = "rust",
) -> EvalResult:
    """Run ``policy`` ("random" or "oracle") until ``episodes`` episodes have ended; average over those."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be positive, got {episodes} and {num_envs}")
    env = VecToolEnv(num_envs=num_envs, suite=suite, seed=seed, backend=backend)
    rng = np.random.default_rng(seed)
    successes: list[np.ndarray] = []
    returns: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    ended = 0
    while ended < episodes:
        tools, args = env.oracle_actions() if policy == "oracle" else random_actions(env, rng)
        env.step(tools, args)
        done = env.terminated | env.truncated
        if done.any():
            successes.append(env.episode_success[done].copy())
            returns.append(env.episode_return[done].copy())
            lengths.append(env.episode_length[done].copy())
            ended += int(done.sum())
    success = np.concatenate(successes)[:episodes]
    ret = np.concatenate(returns)[:episodes]
    length = np.concatenate(lengths)[:episodes]
    return EvalResult(
        suite=env.suite_name,
        policy=policy,
        episodes=int(success.size),
        success_rate=float(success.mean()),
        mean_return=float(ret.mean()),
        mean_length=float(length.mean()),
    )


def main(argv: list[str] | None = None) -> int:
    """Print oracle and random success for the given (default: all shipped) suites."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("suites", nargs="*", help="suite names or paths (default: all in envs/suites)")
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("rust", "python"), default="rust")
    ns = parser.parse_args(argv)
    print(f"{'suite':<10} {'policy':<7} {'episodes':>8} {'success':>8} {'return':>8} {'length':>7}")
    for suite in ns.suites or available_suites():
        for policy in POLICIES:
            r = evaluate(suite, policy, ns.episodes, seed=ns.seed, backend=ns.backend)
            print(
                f"{r.suite:<10} {r.policy:<7} {r.episodes:>8} {r.success_rate:>8.3f} "
                f"{r.mean_return:>8.2f} {r.mean_length:>7.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
