"""The default suite is worth learning: the scripted oracle succeeds, a uniformly random policy mostly fails."""

from __future__ import annotations

import pytest

from dspy_rl.envs import available_suites
from dspy_rl.envs.config import EnvConfig
from dspy_rl.evaluation import EvalConfig, EvalResult
from dspy_rl.evaluation import evaluate as run_eval


def evaluate(
    suite: str, policy: str, episodes: int, seed: int, num_envs: int = 256, backend: str = "rust"
) -> EvalResult:
    """The project's evaluator (``dspy-rl eval``: a fixed episode quota per env slot) on one suite."""
    env = EnvConfig(suite=suite, num_envs=num_envs, seed=seed, backend=backend)
    return run_eval(EvalConfig(env=env, policy=policy, episodes=episodes, seed=seed))


def test_default_oracle_at_least_95_random_at_most_20_percent() -> None:
    oracle = evaluate("default", "oracle", episodes=3000, seed=0)
    random = evaluate("default", "random", episodes=3000, seed=0)
    assert oracle.success_rate >= 0.95, oracle
    assert random.success_rate <= 0.20, random
    assert oracle.mean_return > random.mean_return + 10.0
    # Optimal episodes are short compared with the horizon (learnable, with room for retries).
    assert 4.0 <= oracle.mean_length <= 10.0


@pytest.mark.parametrize("suite", available_suites())
def test_every_suite_is_solvable_and_graded(suite: str) -> None:
    oracle = evaluate(suite, "oracle", episodes=1000, seed=1)
    random = evaluate(suite, "random", episodes=1000, seed=1)
    assert oracle.success_rate >= 0.95, oracle
    assert random.success_rate < oracle.success_rate - 0.5, random


def test_difficulty_grows_from_easy_to_hard() -> None:
    rates = {
        s: evaluate(s, "random", episodes=1500, seed=2).success_rate for s in ("easy", "default", "hard")
    }
    lengths = {
        s: evaluate(s, "oracle", episodes=500, seed=2).mean_length for s in ("easy", "default", "hard")
    }
    assert rates["easy"] > rates["default"] > rates["hard"], rates
    assert lengths["easy"] < lengths["default"] < lengths["hard"], lengths


def test_python_reference_agrees_on_success_rates() -> None:
    rust = evaluate("default", "random", episodes=400, num_envs=32, seed=4, backend="rust")
    python = evaluate("default", "random", episodes=400, num_envs=32, seed=4, backend="python")
    assert rust.episodes == python.episodes == 400
    assert (rust.success_rate, rust.mean_return, rust.mean_length, rust.env_steps) == (
        python.success_rate,
        python.mean_return,
        python.mean_length,
        python.env_steps,
    )
