"""Our multi-policy PPO vs RLlib PPO (new API stack, multi-agent) on the same ToolEnv, in one run.

Both train policies A/B/C on the `default` suite with the PPO settings of `conf/algo/ppo.yaml` (network width,
epochs, minibatch size, lr, gamma, lambda, clip, coefficients), the same batch per iteration (envs x rollout
length) and one EnvRunner actor, on this machine's CPUs. RLlib sees the env through our RLlib adapter (batched env
runner, action masking). Reports env steps/s, wall seconds to a rolling 0.9 success rate, and the ratios.
Extra ``key=value`` arguments are Hydra overrides of `conf/train.yaml` applied to both frameworks.

    python bench/ppo_vs_rllib.py [--budget-s 300] [--steps 10000000] [--target 0.9] [algo.epochs=4 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
log = logging.getLogger("bench.ppo_vs_rllib")


def run_ours(budget_s: float, target: float, overrides: list[str], steps: int) -> dict[str, Any]:
    from dspy_rl.trainer import run_training

    t_target: list[float] = []
    steps_target: list[int] = []
    start = time.perf_counter()

    def report(m: dict[str, Any]) -> None:
        if not t_target and m["success_rate"] >= target and m["iteration"] >= 3:
            t_target.append(time.perf_counter() - start)
            steps_target.append(m["env_steps"])

    with tempfile.TemporaryDirectory() as run_dir:
        result = run_training(
            [
                *overrides,
                "runtime.num_env_runners=1",
                f"total_env_steps={steps}",
                "logging.progress_bar=false",
                "logging.plot=false",
                "logging.tensorboard=false",
                f"run_dir={run_dir}",
            ],
            report=report,
        )
    wall = time.perf_counter() - start
    return {
        "framework": "dspy-rl",
        "env_steps": result["env_steps"],
        "wall_s": wall,
        "env_steps_per_s": result["env_steps"] / wall,  # includes Ray actor startup (RLlib's excludes it)
        "loop_steps_per_s": result["env_steps"]
        / result["wall_s"],  # first sample to last update, like RLlib's
        "final_success": result["success_rate"],
        "time_to_target_s": t_target[0] if t_target else None,
        "steps_to_target": steps_target[0] if steps_target else None,
        "budget_s": budget_s,
    }


def run_rllib(budget_s: float, target: float, cfg: Any) -> dict[str, Any]:
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.callbacks.callbacks import RLlibCallback

    from dspy_rl.envs.rllib_env import configure

    algo = cfg.algo

    class SuccessCallback(RLlibCallback):
        def on_episode_end(self, *, episode: Any, metrics_logger: Any = None, **kwargs: Any) -> None:
            # RLlib also marks truncated multi-agent episodes is_terminated (all agents done); the goal was
            # reached iff the episode was not truncated at episode_len.
            metrics_logger.log_value("success", float(not episode.is_truncated), reduce="mean", window=2000)

    config = (
        PPOConfig()
        .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
        .env_runners(num_env_runners=1, num_cpus_per_env_runner=1)
        .learners(num_learners=0)
        .training(
            train_batch_size_per_learner=cfg.env.num_envs * algo.rollout_len,
            minibatch_size=algo.minibatch_size,
            num_epochs=algo.epochs,
            lr=algo.lr,
            gamma=algo.gamma,
            lambda_=algo.gae_lambda,
            clip_param=algo.clip,
            entropy_coeff=algo.ent_coef,
            vf_loss_coeff=algo.vf_coef,
            grad_clip=algo.max_grad_norm,
            grad_clip_by="global_norm",
        )
        .callbacks(SuccessCallback)
        .reporting(metrics_num_episodes_for_smoothing=2000)
    )
    config = configure(
        config,
        {"suite": cfg.env.suite, "invalid_action": "error"},
        num_envs_per_env_runner=cfg.env.num_envs,
        hidden=(algo.hidden, algo.hidden),
    )
    algo = config.build_algo()
    start = time.perf_counter()
    t_target = steps_target = None
    steps, success, iters = 0, 0.0, 0
    try:
        while time.perf_counter() - start < budget_s:
            result = algo.train()
            iters += 1
            runners = result.get("env_runners", {})
            steps = int(runners.get("num_env_steps_sampled_lifetime", steps))
            success = float(runners.get("success", success))
            log.info(
                "rllib iter %d: %d env steps, success %.3f, %.0fs",
                iters,
                steps,
                success,
                time.perf_counter() - start,
            )
            if t_target is None and success >= target and iters >= 3:
                t_target, steps_target = time.perf_counter() - start, steps
                break
    finally:
        algo.stop()
    wall = time.perf_counter() - start
    return {
        "framework": "rllib",
        "env_steps": steps,
        "wall_s": wall,
        "env_steps_per_s": steps / wall,
        "final_success": success,
        "time_to_target_s": t_target,
        "steps_to_target": steps_target,
        "budget_s": budget_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-clock cap for RLlib")
    parser.add_argument("--target", type=float, default=0.9, help="rolling success rate to time")
    parser.add_argument(
        "--steps",
        type=int,
        default=10_000_000,
        help="env steps for our run (a training job's length: actor startup is a few seconds of it)",
    )
    parser.add_argument("--out", default="bench/results/ppo_vs_rllib.json")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/train.yaml for both frameworks")
    args = parser.parse_args()
    from dspy_rl.trainer import load_config

    cfg = load_config(args.overrides)  # validated before anything starts
    log.info(
        "both frameworks: suite=%s envs=%d rollout_len=%d epochs=%d minibatch=%d hidden=%d lr=%g",
        cfg.env.suite,
        cfg.env.num_envs,
        cfg.algo.rollout_len,
        cfg.algo.epochs,
        cfg.algo.minibatch_size,
        cfg.algo.hidden,
        cfg.algo.lr,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import ray

    from dspy_rl.utils.ray_local import init_ray

    init_ray(num_cpus=max(os.cpu_count() or 1, 3), log_to_driver=False)  # local, on 127.0.0.1 only
    try:
        ours = run_ours(args.budget_s, args.target, args.overrides, args.steps)
        rllib = run_rllib(args.budget_s, args.target, cfg)
    finally:
        ray.shutdown()
    rows = [ours, rllib]
    print(
        f"\n{'framework':<10} {'env steps':>10} {'wall s':>8} {'steps/s':>10} {'success':>8} {'t->target s':>12}"
    )
    for r in rows:
        tt = f"{r['time_to_target_s']:.1f}" if r["time_to_target_s"] is not None else f">{r['wall_s']:.0f}"
        print(
            f"{r['framework']:<10} {r['env_steps']:>10,} {r['wall_s']:>8.1f} {r['env_steps_per_s']:>10,.0f} "
            f"{r['final_success']:>8.3f} {tt:>12}"
        )
    ratio = ours["env_steps_per_s"] / max(rllib["env_steps_per_s"], 1e-9)
    print(f"\nenv steps/s ratio (dspy-rl / RLlib): {ratio:.1f}x")
    print(
        f"dspy-rl training loop alone (RLlib's steps/s are timed from after build_algo): "
        f"{ours['loop_steps_per_s']:,.0f} env steps/s = {ours['loop_steps_per_s'] / rllib['env_steps_per_s']:.1f}x"
    )
    if ours["time_to_target_s"] is not None:
        other = rllib["time_to_target_s"] or rllib["wall_s"]
        bound = "" if rllib["time_to_target_s"] is not None else " (RLlib did not reach it: lower bound)"
        print(
            f"time-to-{args.target} ratio (RLlib / dspy-rl): {other / ours['time_to_target_s']:.1f}x{bound}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"rows": rows, "steps_per_s_ratio": ratio, "cpus": os.cpu_count(), "overrides": args.overrides},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
