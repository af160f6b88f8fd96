"""One EnvRunner: a VecToolEnv, a CPU copy of the three policies, preallocated rollout buffers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dspy_rl.envs.objectives import OBJECTIVES, decompose
from dspy_rl.learners.gigpo import gigpo_advantages
from dspy_rl.learners.grpo import group_advantages
from dspy_rl.learners.ppo import compute_gae
from dspy_rl.models.policy import MultiPolicy, load_numpy_state


@dataclass
class RolloutSpec:
    """What a runner needs to know besides the env config."""

    rollout_len: int
    gamma: float
    gae_lambda: float
    hidden: int
    objective_weights: tuple[float, ...] | None = None
    """Weights of the global objectives (:mod:`dspy_rl.envs.objectives`) in the training reward; None: the env's
    reward (every weight 1). Per-episode objective sums are reported either way."""


def make_env(env_cfg: dict[str, Any], seed: int) -> Any:
    from dspy_rl.envs import VecToolEnv, rust_available

    backend = env_cfg.get("backend", "rust")
    if backend == "auto":
        backend = "rust" if rust_available() else "python"
    if env_cfg.get("pad"):  # a curriculum: one layout for every suite
        from dspy_rl.envs.padded import PaddedVecEnv, PadSpec

        return PaddedVecEnv(make_env({**env_cfg, "pad": None}, seed), PadSpec(**env_cfg["pad"]))
    env = VecToolEnv(
        num_envs=env_cfg["num_envs"],
        suite=env_cfg["suite"],
        seed=seed,
        num_threads=env_cfg.get("num_threads", 0),
        invalid_action=env_cfg.get("invalid_action", "error"),
        episode_len=env_cfg.get("episode_len"),
        backend=backend,
    )
    if env_cfg.get("actions"):
        from dspy_rl.envs.allowlist import AllowListVecEnv

        env = AllowListVecEnv(env, env_cfg["actions"])
    return env


def env_info(env: Any) -> dict[str, int]:
    """The dimensions a learner needs to build the policies for ``env``'s suite, and its batch shape."""
    return {
        "obs_dim": env.obs_dim,
        "num_tools": env.num_tools,
        "num_args": env.num_args,
        "num_envs": env.num_envs,
        "episode_len": env.episode_len,
    }


class EnvRunner:
    """Samples ``rollout_len`` steps from every env with the current weights and computes GAE.

    Used directly in the driver (``runtime.num_env_runners=0``) or as a Ray actor (``RunnerPool``).
    """

    def __init__(self, env_cfg: dict[str, Any], spec: RolloutSpec, seed: int, torch_threads: int = 1) -> None:
        torch.set_num_threads(torch_threads)
        self.env_cfg, self.seed = env_cfg, seed
        self.env = make_env(env_cfg, seed)
        self.env.reset(seed)
        self._obj_w = (
            None if spec.objective_weights is None else np.asarray(spec.objective_weights, np.float64)
        )
        self._init_suite(env_cfg["suite"])
        self.spec = spec
        self.policy = MultiPolicy(self.env.obs_dim, self.env.num_tools, self.env.num_args, spec.hidden)
        self.policy.eval()
        self.generator = torch.Generator().manual_seed(seed)
        n, t = self.env.num_envs, spec.rollout_len
        e = self.env
        self.buf = {
            "obs": np.zeros((t, n, e.obs_dim), np.float32),
            "tool_mask": np.zeros((t, n, e.num_tools), bool),
            "arg_mask": np.zeros((t, n, e.num_args), bool),
            "phase": np.zeros((t, n), np.uint8),
            "tools": np.zeros((t, n), np.int64),
            "args": np.zeros((t, n), np.int64),
            "logp_tool": np.zeros((t, n), np.float32),
            "logp_arg": np.zeros((t, n), np.float32),
            "v_tool": np.zeros((t, n), np.float32),
            "v_arg": np.zeros((t, n), np.float32),
            "rewards": np.zeros((t, n), np.float32),
            "dones": np.zeros((t, n), bool),
        }
        # Per-policy return of the running episode: A earns the first step's reward, B the later steps'.
        self._ret_a = np.zeros(n, np.float32)
        self._ret_b = np.zeros(n, np.float32)

    def env_info(self) -> dict[str, int]:
        return env_info(self.env)

    def set_suite(self, _weights: Any, suite: str) -> dict[str, Any]:
        """Switch to another suite of the same padded layout (curriculum promotion); the episodes start anew."""
        cfg = {**self.env_cfg, "suite": suite}
        env = make_env(cfg, self.seed)
        if (env.obs_dim, env.num_tools, env.num_args) != (
            self.env.obs_dim,
            self.env.num_tools,
            self.env.num_args,
        ):
            raise ValueError(f"suite {suite!r} does not have this runner's padded layout")
        self.env_cfg, self.env = cfg, env
        self.env.reset(self.seed)
        self._init_suite(suite)
        return {}

    def sample(self, weights: dict[str, np.ndarray], num_steps: int | None = None) -> dict[str, Any]:
        """Roll out ``num_steps`` (default ``rollout_len``) steps; returns flat arrays plus episode stats."""
        load_numpy_state(self.policy, weights)
        steps = self.spec.rollout_len if num_steps is None else min(num_steps, self.spec.rollout_len)
        env, b = self.env, self.buf
        ep_ret, ep_len, ep_succ, ep_a, ep_b, ep_obj = [], [], [], [], [], []
        t0 = time.perf_counter()
        for t in range(steps):
            b["obs"][t] = env.obs
            b["tool_mask"][t] = env.tool_mask
            b["arg_mask"][t] = env.arg_mask
            b["phase"][t] = env.phase
            tools, args, lp_t, lp_a, v_t, v_a = self.policy.act(
                torch.from_numpy(b["obs"][t]),
                torch.from_numpy(b["tool_mask"][t]),
                torch.from_numpy(b["arg_mask"][t]),
                torch.from_numpy(b["phase"][t]),
                self.generator,
                takes_arg=self._takes_arg_t,
            )
            b["tools"][t], b["args"][t] = tools.numpy(), args.numpy()
            b["logp_tool"][t], b["logp_arg"][t] = lp_t.numpy(), lp_a.numpy()
            b["v_tool"][t], b["v_arg"][t] = v_t.numpy(), v_a.numpy()
            env.step(b["tools"][t], b["args"][t])
            r = self._step_reward()
            b["rewards"][t] = r
            done = env.terminated | env.truncated
            b["dones"][t] = done
            first = b["phase"][t] == 0
            self._ret_a += np.where(first, r, 0.0)
            self._ret_b += np.where(first, 0.0, r)
            if done.any():
                ep_ret.append(env.episode_return[done].copy())
                ep_len.append(env.episode_length[done].copy())
                ep_succ.append(env.episode_success[done].copy())
                ep_a.append(self._ret_a[done].copy())
                ep_b.append(self._ret_b[done].copy())
                ep_obj.append(self._obj_ret[done].copy())
                self._ret_a[done] = 0.0
                self._ret_b[done] = 0.0
                self._obj_ret[done] = 0.0
        sample_s = time.perf_counter() - t0
        last_tool, last_arg = self.policy.values(
            torch.from_numpy(env.obs.copy()), torch.from_numpy(env.phase.copy())
        )
        sl = slice(0, steps)
        gamma, lam = self.spec.gamma, self.spec.gae_lambda
        adv_t, ret_t = compute_gae(
            b["rewards"][sl], b["v_tool"][sl], b["dones"][sl], last_tool.numpy(), gamma, lam
        )
        adv_a, ret_a = compute_gae(
            b["rewards"][sl], b["v_arg"][sl], b["dones"][sl], last_arg.numpy(), gamma, lam
        )
        n = steps * env.num_envs

        def flat(x: np.ndarray) -> np.ndarray:
            return x[sl].reshape(n, *x.shape[2:])

        out: dict[str, Any] = {
            k: flat(b[k])
            for k in ("obs", "tool_mask", "arg_mask", "phase", "tools", "args", "logp_tool", "logp_arg")
        }
        out["arg_active"] = self.takes_arg[out["tools"]]
        out.update(
            adv_tool=adv_t.reshape(n),
            ret_tool=ret_t.reshape(n),
            adv_arg=adv_a.reshape(n),
            ret_arg=ret_a.reshape(n),
        )

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        out["stats"] = {
            "env_steps": n,
            "sample_s": sample_s,
            "episode_return": cat(ep_ret, np.float32),
            "episode_length": cat(ep_len, np.int32),
            "episode_success": cat(ep_succ, bool),
            "return_A": cat(ep_a, np.float32),
            "return_B": cat(ep_b, np.float32),
            "objectives": np.concatenate(ep_obj) if ep_obj else np.zeros((0, len(OBJECTIVES))),
        }
        return out

    def _init_suite(self, name: str) -> None:
        from dspy_rl.envs import load_suite

        suite = load_suite(name)
        self.takes_arg = np.zeros(self.env.num_tools, dtype=bool)  # padded tools (curriculum) take none
        self.takes_arg[: len(suite.tools)] = [t.takes_arg for t in suite.tools]
        self._takes_arg_t = torch.from_numpy(self.takes_arg)
        self._suite_rewards = suite.rewards
        self._obj_ret = np.zeros((self.env.num_envs, len(OBJECTIVES)))
        self._ret_a = np.zeros(self.env.num_envs, np.float32)
        self._ret_b = np.zeros(self.env.num_envs, np.float32)

    def _step_reward(self) -> np.ndarray:
        """The training reward of the step just taken (weighted objectives, or the env's); accumulates each env's
        per-episode objective terms in ``_obj_ret``."""
        env = self.env
        terms = decompose(env.rewards, env.results, env.terminated, self._suite_rewards)
        self._obj_ret += terms
        if self._obj_w is None:
            return env.rewards
        return (terms @ self._obj_w).astype(np.float32)

    def sample_groups(
        self, weights: dict[str, np.ndarray], group_size: int, step_weight: float = 0.0, gamma: float = 0.95
    ) -> dict[str, Any]:
        """GRPO data: every env runs one episode; envs ``g*G .. g*G+G-1`` start from one snapshot.

        Returns the steps each rollout took before its episode ended (flat arrays), every step carrying its
        rollout's group-relative advantage, and episode stats. ``env_steps`` counts every env step executed,
        including the idle steps of envs whose episode ended before the longest one in the batch.
        ``step_weight > 0`` is GiGPO: each step's advantage adds ``step_weight`` times its step-level advantage
        among identical states of its group (:func:`dspy_rl.learners.gigpo.gigpo_advantages`, discount ``gamma``).
        """
        load_numpy_state(self.policy, weights)
        env, n, g = self.env, self.env.num_envs, group_size
        self._round = getattr(self, "_round", 0) + 1
        env.reset(int(self.generator.initial_seed() * 1_000_003 + self._round) % (2**63))
        for start in range(0, n, g):
            snap = env.snapshot(start)
            for j in range(start + 1, start + g):
                env.restore(j, snap)
        horizon = env.episode_len
        keys = ("obs", "tool_mask", "arg_mask", "phase", "tools", "args", "logp_tool", "logp_arg")
        steps: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        alive_rows: list[np.ndarray] = []
        alive_t: list[np.ndarray] = []
        rewards_t: list[np.ndarray] = []
        alive = np.ones(n, bool)
        # float64: rollouts whose rewards come in another order would otherwise differ by float32 rounding, which
        # the group standardization would blow up into advantages of order 0.1.
        ret = np.zeros(n, np.float64)
        obj = np.zeros((n, len(OBJECTIVES)))
        success = np.zeros(n, bool)
        length = np.zeros(n, np.int32)
        executed = 0
        t0 = time.perf_counter()
        for _ in range(horizon):
            obs, tmask, amask, phase = (
                env.obs.copy(),
                env.tool_mask.copy(),
                env.arg_mask.copy(),
                env.phase.copy(),
            )
            tools, args, lp_t, lp_a, _, _ = self.policy.act(
                torch.from_numpy(obs),
                torch.from_numpy(tmask),
                torch.from_numpy(amask),
                torch.from_numpy(phase),
                self.generator,
                takes_arg=self._takes_arg_t,
            )
            tools_np, args_np = tools.numpy(), args.numpy()
            env.step(tools_np, args_np)
            executed += n
            for k, v in zip(
                keys, (obs, tmask, amask, phase, tools_np, args_np, lp_t.numpy(), lp_a.numpy()), strict=True
            ):
                steps[k].append(v[alive])
            alive_rows.append(np.flatnonzero(alive))
            alive_t.append(alive.copy())
            terms = decompose(env.rewards, env.results, env.terminated, self._suite_rewards)
            r = env.rewards.astype(np.float64) if self._obj_w is None else terms @ self._obj_w
            obj += np.where(alive[:, None], terms, 0.0)
            rewards_t.append(r)
            ret += np.where(alive, r, 0.0)
            if executed == n:  # every env starts its episode at this step: policy A acted
                first_reward = r.astype(np.float32)
            length += alive
            done = alive & (env.terminated | env.truncated)
            success |= done & env.terminated
            alive &= ~done
            if not alive.any():
                break
        sample_s = time.perf_counter() - t0
        out: dict[str, Any] = {k: np.concatenate(v) for k, v in steps.items()}
        gigpo_stats: dict[str, float] = {}
        if step_weight > 0:
            out["adv"], gigpo_stats = gigpo_advantages(
                out["obs"], np.stack(rewards_t), np.stack(alive_t), ret, g, gamma, step_weight
            )
        else:
            adv = group_advantages(torch.from_numpy(ret), torch.arange(n) // g).numpy()
            out["adv"] = adv[np.concatenate(alive_rows)]
        out["arg_active"] = self.takes_arg[out["tools"]]
        out["stats"] = {
            "env_steps": executed,
            "sample_s": sample_s,
            "episode_return": ret.astype(np.float32),
            "episode_length": length,
            "episode_success": success,
            "return_A": first_reward,
            "return_B": (ret - first_reward).astype(np.float32),
            "objectives": obj,
            **gigpo_stats,
        }
        return out
