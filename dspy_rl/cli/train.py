"""``dspy-rl train``: multi-policy PPO on the Rust ToolEnv with EnvRunner actors and a LearnerGroup.

    dspy-rl train                                   # embedded defaults: local Ray, default suite
    dspy-rl train env=hard algo.lr=3e-4 runtime.num_env_runners=2 total_env_steps=1000000
    dspy-rl train resume=runs/train/2026-11-21_23-59-59   # continue a run from its last checkpoint

The trainer itself is the library :mod:`dspy_rl.trainer` (``run_training(overrides, report=None) -> dict``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dspy_rl.cli.help import render, wants_help
from dspy_rl.trainer import TrainConfig, Trainer, load_config


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv):
        print(render(__doc__, "train", TrainConfig))
        return 0
    cfg = load_config(argv)
    from dspy_rl.system.guard import enforce

    enforce(cfg.guard, cfg.resume or cfg.run_dir or "runs", what="train run")
    result = Trainer(cfg).run()
    reached = result["reached_0.9"]
    milestone = (
        f"success rate first >= 0.9 at env step {reached['env_steps']:,} after {reached['wall_s']:.0f}s"
        if reached
        else "success rate did not reach 0.9 in this run"
    )
    if result.get("converged_reason"):
        print(f"converged: {result['converged_reason']}")
    print(
        f"{result['status']}: env_steps={result['env_steps']:,} success_rate={result['success_rate']:.3f} "
        f"episode_return={result['episode_return']:.2f} wall_s={result['wall_s']:.1f}; {milestone}\n"
        f"run dir: {result['run_dir']} (config.yaml, metrics.jsonl, tb/, checkpoints/, learning_curve.png)"
    )
    if "eval_success_rate" in result:
        print(
            f"final eval ({result['eval_episodes']} episodes, eval_seed envs): "
            f"eval_success_rate={result['eval_success_rate']:.3f} eval_return={result['eval_return']:.2f}"
        )
    return 0 if result["status"] != "error" else 1
