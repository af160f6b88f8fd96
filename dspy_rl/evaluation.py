"""The evaluator: run a policy on a task suite; success rate, mean return and mean length (``dspy-rl eval``,
the trainer's final evaluation).

Episodes run batched in one ``VecToolEnv`` (``env.num_envs`` envs, at most ``episodes``). Every env slot owns a
fixed quota of episodes (``episodes`` split evenly) and only its first quota count, so short episodes are not
over-represented the way "stop at the first N finished episodes" would over-represent them.

Policies:
  * ``random``: uniform among the tools the mask allows, uniform among the valid argument candidates;
  * ``oracle``: the env's scripted oracle (``env.oracle_actions()``);
  * ``checkpoint``: a trained policy loaded by ``dspy_rl.policies.load_policy(checkpoint)`` (provided by the
    trainer). The loaded object must have ``act(obs, tool_mask, arg_mask, phase, greedy=...)`` taking torch
    tensors of the env buffers and returning ``(tools, args, ...)``, as ``dspy_rl.models.policy.MultiPolicy``
    does. New policy kinds are added to :data:`POLICIES`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from hydra.core.config_store import ConfigStore

from dspy_rl.config import ConfigError, compose, require, to_object
from dspy_rl.envs import SuiteError, VecEnv, resolve_suite
from dspy_rl.envs.baselines import random_actions
from dspy_rl.envs.config import EnvConfig
from dspy_rl.envs.gym_env import make_vec_env

logger = logging.getLogger(__name__)

#: ``--flag``/``key=value`` shortcuts: ``suite=hard`` means ``env.suite=hard``.
ALIASES = {
    "suite": "env.suite",
    "backend": "env.backend",
    "num_envs": "env.num_envs",
    "n_envs": "env.num_envs",
    "episode_len": "env.episode_len",
    "actions": "env.actions",
    "environment": "env",
}


@dataclass
class EvalConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    """Environment settings (group ``env/``)."""
    policy: str = "random"
    """Policy to evaluate: ``random``, ``oracle`` or ``checkpoint``."""
    episodes: int = 1000
    """Episodes to run."""
    checkpoint: str | None = None
    """Checkpoint path for ``policy=checkpoint``."""
    greedy: bool = True
    """``policy=checkpoint``: take the most likely action instead of sampling."""
    seed: int = 0
    """Seed of the random policy's sampling."""
    max_steps: int | None = None
    """Stop after this many batched steps even if episodes are missing (null: ``episodes * episode_len``)."""
    json: bool = False
    """Print the result as one JSON line instead of a table."""

    def __post_init__(self) -> None:
        require(self.policy in POLICIES, "policy", self.policy, f"one of {sorted(POLICIES)}")
        require(self.episodes >= 1, "episodes", self.episodes, "an integer >= 1")
        require(
            self.policy != "checkpoint" or bool(self.checkpoint),
            "checkpoint",
            self.checkpoint,
            "a path when policy=checkpoint (checkpoint=<path>)",
        )
        require(self.max_steps is None or self.max_steps >= 1, "max_steps", self.max_steps, "null or >= 1")


class Policy(Protocol):
    """Picks one (tool, argument) per env from the env's current buffers."""

    def __call__(self, env: VecEnv) -> tuple[np.ndarray, np.ndarray]: ...


def random_policy(cfg: EvalConfig) -> Policy:
    rng = np.random.default_rng(cfg.seed)

    return lambda env: random_actions(env, rng)


def oracle_policy(cfg: EvalConfig) -> Policy:
    return lambda env: env.oracle_actions()


def checkpoint_policy(cfg: EvalConfig) -> Policy:
    import torch

    from dspy_rl.policies import load_policy

    try:
        policy = load_policy(cfg.checkpoint)
    except FileNotFoundError as exc:
        raise ConfigError(f"checkpoint={cfg.checkpoint!r} does not exist: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"checkpoint={cfg.checkpoint!r}: {exc}") from exc

    def act(env: VecEnv) -> tuple[np.ndarray, np.ndarray]:
        out = policy.act(
            torch.from_numpy(env.obs),
            torch.from_numpy(env.tool_mask),
            torch.from_numpy(env.arg_mask),
            torch.from_numpy(env.phase),
            greedy=cfg.greedy,
        )
        return out[0].cpu().numpy().astype(np.int64), out[1].cpu().numpy().astype(np.int64)

    return act


def _pad_for_checkpoint(env: VecEnv, checkpoint: str | None) -> VecEnv:
    """A curriculum run's policy sees every suite in the padded layout of the curriculum: evaluate it the same way."""
    from dspy_rl.envs.padded import PaddedVecEnv
    from dspy_rl.policies import checkpoint_pad

    try:
        pad = checkpoint_pad(checkpoint or "")
        return env if pad is None else PaddedVecEnv(env, pad)
    except FileNotFoundError as exc:
        raise ConfigError(f"checkpoint={checkpoint!r} does not exist: {exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"checkpoint={checkpoint!r}: {exc}") from exc


#: policy name -> factory building the policy from the config (the extension point for new kinds).
POLICIES: dict[str, Callable[[EvalConfig], Policy]] = {
    "random": random_policy,
    "oracle": oracle_policy,
    "checkpoint": checkpoint_policy,
}

ConfigStore.instance().store(name="eval_schema", node=EvalConfig)


@dataclass
class EvalResult:
    """Aggregates over the evaluated episodes."""

    policy: str
    suite: str
    episodes: int
    success_rate: float
    mean_return: float
    mean_length: float
    env_steps: int
    seconds: float


def evaluate(cfg: EvalConfig) -> EvalResult:
    """Run ``cfg.episodes`` episodes of ``cfg.policy`` on the configured suite."""
    try:
        resolve_suite(cfg.env.suite)
    except SuiteError as exc:
        raise ConfigError(f"env.suite={cfg.env.suite!r}: {exc}") from exc
    num_envs = min(cfg.env.num_envs, cfg.episodes)
    env = make_vec_env(
        num_envs,
        cfg.env.suite,
        cfg.env.seed,
        cfg.env.backend,
        cfg.env.invalid_action,
        episode_len=cfg.env.episode_len,
        num_threads=cfg.env.num_threads,
    )
    if cfg.env.actions:
        from dspy_rl.envs.allowlist import AllowListVecEnv

        require(
            cfg.policy != "oracle",
            "policy",
            cfg.policy,
            "random or checkpoint with env.actions (the oracle follows the suite's plans, whatever tools they use)",
        )

        env = AllowListVecEnv(env, cfg.env.actions)
    if cfg.policy == "checkpoint":
        env = _pad_for_checkpoint(env, cfg.checkpoint)
    policy = POLICIES[cfg.policy](cfg)
    quota = np.full(num_envs, cfg.episodes // num_envs, dtype=np.int64)
    quota[: cfg.episodes % num_envs] += 1
    done = np.zeros(num_envs, dtype=np.int64)
    returns: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    successes: list[np.ndarray] = []
    max_steps = cfg.max_steps or int(quota.max()) * env.episode_len
    start, steps = time.perf_counter(), 0
    while (done < quota).any():
        if steps >= max_steps:
            logger.warning(
                "stopped after max_steps=%d batched steps with %d of %d episodes",
                max_steps,
                int(np.minimum(done, quota).sum()),
                cfg.episodes,
            )
            break
        tools, args = policy(env)
        env.step(tools, args)
        steps += 1
        ended = (env.terminated | env.truncated) & (done < quota)
        if ended.any():
            returns.append(env.episode_return[ended].copy())
            lengths.append(env.episode_length[ended].copy())
            successes.append(env.episode_success[ended].copy())
            done += ended
    seconds = time.perf_counter() - start
    n = int(sum(r.size for r in returns))
    if n == 0:
        raise RuntimeError(f"no episode finished within max_steps={max_steps}; raise max_steps")
    return EvalResult(
        policy=cfg.policy,
        suite=env.suite_name,
        episodes=n,
        success_rate=float(np.concatenate(successes).mean()),
        mean_return=float(np.concatenate(returns).astype(np.float64).mean()),
        mean_length=float(np.concatenate(lengths).mean()),
        env_steps=steps * num_envs,
        seconds=seconds,
    )


def load_config(argv: list[str]) -> EvalConfig:
    """Compose ``conf/eval.yaml`` with the command line (``suite=``/``backend=``/``num_envs=`` are shortcuts)."""
    rewritten = []
    for tok in argv:
        key, eq, value = tok.partition("=")
        rewritten.append(f"{ALIASES[key]}={value}" if eq and key in ALIASES else tok)
    return to_object(compose("eval", rewritten, ALIASES), EvalConfig)
