"""Our PPO (`dspy-rl train`) vs PufferLib 3's own trainer (PuffeRL) on ToolEnv, in one run.

PuffeRL trains on the same ToolEnv through our PufferLib adapter (`dspy_rl.envs.puffer_env.ToolPufferEnv`, one
native PufferEnv holding all envs, masks appended to the observation), with:

* the same network: our `MultiPolicy` (actor-critics A and B for the tool, C for the argument, two hidden layers
  of `hidden`), wrapped for PuffeRL's single-policy interface: A's head on first steps, B's later, C's argument
  head, each masked with the env's masks (taken from the observation), the tool critic as PuffeRL's value;
* the same batch: `num_envs` envs x 16 steps per update, minibatch 4096, 1 epoch;
* the same PPO settings: Adam lr 1e-2 (no annealing), gamma 0.99, GAE lambda 0.95, clip 0.2, vf coef 0.5, entropy
  0.01, grad norm 1.0; PuffeRL's prioritized replay off (prio_alpha 0: uniform minibatches), V-trace clips at 1
  (on-policy GAE for one epoch);
* what cannot be the same, because it is PuffeRL's fixed design: it clips rewards to [-1, 1] (ToolEnv's
  completion bonus is +10), clips the value loss (vf_clip_coef, set to 10 here), has one value head, and samples
  the argument for every step (we train C only on steps whose tool takes an argument).

PuffeRL's console dashboard is switched off (as our progress bar is); its trainer runs in this process with the env
stepped in the same process (PufferLib's native vectorization), and ours runs with its default EnvRunner actor on
local Ray. Both count env steps to the first point where the rolling success rate over the last 2000 episodes
is >= 0.9 (once 200 episodes and `episode_len * num_envs` steps have passed, the trainer's rule).

    python bench/ppo_vs_pufferlib.py --suite default --steps 1000000 --seeds 0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

NUM_ENVS = 512
ROLLOUT = 16
MINIBATCH = 4096
HIDDEN = 64
WINDOW, SETTLE = 2000, 200


def run_ours(suite: str, steps: int, seed: int) -> dict[str, Any]:
    """`dspy-rl train` with its defaults (PPO, one EnvRunner actor, async sampling)."""
    from dspy_rl.trainer import run_training

    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = run_training(
            [
                f"env={suite}",
                f"env.num_envs={NUM_ENVS}",
                f"total_env_steps={steps}",
                f"seed={seed}",
                f"env.seed={seed}",
                "eval_episodes=0",
                "logging.progress_bar=false",
                "logging.plot=false",
                "logging.tensorboard=false",
                f"run_dir={run_dir}",
            ]
        )
        wall = time.perf_counter() - start
    reached = result.get("reached_0.9")
    return {
        "trainer": "ours",
        "seed": seed,
        "env_steps": result["env_steps"],
        "wall_s": wall,
        "env_steps_per_s": result["env_steps"] / wall,
        # the training loop alone (from the trainer's start: Ray and the runner actor already up)
        "loop_env_steps_per_s": result["env_steps"] / result["wall_s"],
        "steps_to_0.9": reached["env_steps"] if reached else None,
        "final_success": result["success_rate"],
    }


def _puffer_policy(obs_dim: int, num_tools: int, num_args: int) -> Any:
    import torch

    from dspy_rl.models.policy import MultiPolicy

    class PuffPolicy(torch.nn.Module):
        """Our MultiPolicy behind PuffeRL's `forward(obs, state) -> (logits, value)` interface."""

        def __init__(self) -> None:
            super().__init__()
            self.net = MultiPolicy(obs_dim, num_tools, num_args, HIDDEN)

        def forward(self, obs: torch.Tensor, state: Any = None) -> tuple[list[torch.Tensor], torch.Tensor]:
            o = obs[:, :obs_dim]
            tool_mask = obs[:, obs_dim : obs_dim + num_tools] > 0.5
            arg_mask = obs[:, obs_dim + num_tools :] > 0.5
            first = o[:, -1] == 0  # step fraction 0: an episode's first step (policy A)
            tool_logits, value = self.net._tool_logits_values(o, first)
            arg_logits = self.net.nets["C"].actor(o)
            return [tool_logits.masked_fill(~tool_mask, -1e9), arg_logits.masked_fill(~arg_mask, -1e9)], value

        def forward_eval(
            self, obs: torch.Tensor, state: Any = None
        ) -> tuple[list[torch.Tensor], torch.Tensor]:
            return self.forward(obs, state)

    return PuffPolicy()


def run_pufferl(suite: str, steps: int, seed: int) -> dict[str, Any]:
    """PufferLib 3's PuffeRL on our adapter with the settings in the module docstring."""
    import torch
    from pufferlib import pufferl

    from dspy_rl.envs.puffer_env import ToolPufferEnv

    torch.manual_seed(seed)
    torch.set_num_threads(1)  # as our driver learner (runtime.torch_threads=1)
    successes: deque[float] = deque(maxlen=WINDOW)
    episodes = [0]

    class Recorded(ToolPufferEnv):
        def step(self, actions: np.ndarray) -> Any:
            out = super().step(actions)
            v = self.vec
            ended = v.terminated | v.truncated
            if ended.any():
                successes.extend(v.episode_success[ended].astype(float).tolist())
                episodes[0] += int(ended.sum())
            return out

    env = Recorded(num_envs=NUM_ENVS, suite=suite, seed=seed, backend="rust", num_threads=1)
    policy = _puffer_policy(env.vec.obs_dim, env.vec.num_tools, env.vec.num_args)
    with tempfile.TemporaryDirectory() as data_dir:
        config = {
            "env": f"toolenv_{suite}",
            "seed": seed,
            "torch_deterministic": False,
            "cpu_offload": False,
            "device": "cpu",
            "optimizer": "adam",
            "anneal_lr": False,
            "precision": "float32",
            "total_timesteps": steps,
            "learning_rate": 1e-2,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "update_epochs": 1,
            "clip_coef": 0.2,
            "vf_coef": 0.5,
            "vf_clip_coef": 10.0,
            "max_grad_norm": 1.0,
            "ent_coef": 0.01,
            "adam_beta1": 0.9,
            "adam_beta2": 0.999,
            "adam_eps": 1e-8,
            "data_dir": data_dir,
            "checkpoint_interval": 10**9,
            "batch_size": NUM_ENVS * ROLLOUT,
            "bptt_horizon": ROLLOUT,
            "minibatch_size": MINIBATCH,
            "max_minibatch_size": 32768,
            "compile": False,
            "compile_mode": "default",
            "compile_fullgraph": False,
            "use_rnn": False,
            "vtrace_rho_clip": 1.0,
            "vtrace_c_clip": 1.0,
            "prio_alpha": 0.0,
            "prio_beta0": 1.0,
        }
        pufferl.PuffeRL.print_dashboard = lambda self, *a, **k: (
            None
        )  # console output off, like our progress bar
        with contextlib.redirect_stdout(io.StringIO()):
            trainer = pufferl.PuffeRL(config, env, policy)
        episode_len = env.vec.episode_len
        reached = None
        start = time.perf_counter()
        try:
            while trainer.global_step < steps:
                trainer.evaluate()
                trainer.train()
                settled = episodes[0] >= SETTLE and trainer.global_step >= episode_len * NUM_ENVS
                if reached is None and settled and np.mean(successes) >= 0.9:
                    reached = trainer.global_step
            wall = time.perf_counter() - start
        finally:
            trainer.utilization.stop()
    return {
        "trainer": "pufferl",
        "seed": seed,
        "env_steps": trainer.global_step,
        "wall_s": wall,
        "env_steps_per_s": trainer.global_step / wall,
        "loop_env_steps_per_s": trainer.global_step / wall,  # PuffeRL starts nothing before its loop
        "steps_to_0.9": reached,
        "final_success": float(np.mean(successes)) if successes else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default="default")
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="bench/results/ppo_vs_pufferlib.json")
    args = parser.parse_args()
    try:
        import pufferlib.pufferl  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"PuffeRL cannot run here: {exc}. Install it with PUFFERLIB_WITH_TRAIN=1 scripts/install_pufferlib.sh"
        ) from None
    runs = []
    for seed in args.seeds:
        runs.append(run_pufferl(args.suite, args.steps, seed))
        runs.append(run_ours(args.suite, args.steps, seed))
    print(f"\nsuite={args.suite}, {args.steps:,} env steps, seeds {args.seeds}, {os.cpu_count()} CPUs")
    print(
        f"{'trainer':>8} {'env steps/s':>12} {'(loop only)':>12} {'steps to 0.9':>13} {'final success':>14}"
    )
    for r in runs:
        s90 = f"{r['steps_to_0.9']:,}" if r["steps_to_0.9"] else "not reached"
        print(
            f"{r['trainer']:>8} {r['env_steps_per_s']:>12,.0f} {r['loop_env_steps_per_s']:>12,.0f} {s90:>13} "
            f"{r['final_success']:>14.3f}"
        )
    for key, what in (("env_steps_per_s", "end to end"), ("loop_env_steps_per_s", "training loop")):
        sps = {t: np.mean([r[key] for r in runs if r["trainer"] == t]) for t in ("ours", "pufferl")}
        print(f"env steps/s ratio ours / PuffeRL ({what}): {sps['ours'] / sps['pufferl']:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"suite": args.suite, "steps": args.steps, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
