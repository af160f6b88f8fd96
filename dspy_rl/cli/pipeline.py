"""``dspy-rl pipeline``: sweep -> a full training run with the best configuration -> evaluation, resumable.

    dspy-rl pipeline run_dir=runs/pipeline/p1 sweep.sweep=ppo_tiny sweep.num_samples=4 \\
        train.env=easy train.total_env_steps=200000 eval.episodes=1000
    dspy-rl pipeline run_dir=runs/pipeline/p1          # after an interruption: skips the finished stages

Keys: ``sweep.<key>`` goes to ``dspy-rl sweep`` (conf/sweep.yaml), ``train.<key>`` to ``dspy-rl train``
(conf/train.yaml; the best trial's parameters come first, except the sweep's budget parameter, and these override
them), ``eval.episodes`` / ``eval.greedy`` to the final evaluation of the trained checkpoint on fresh envs.
Every configuration is composed and validated before anything starts. The run directory holds ``sweep/``,
``train/``, ``pipeline.json`` (the stages done, their results and the command line) and ``results.md``, one page
with the sweep's best trials, the chosen configuration, the training outcome and curve, and the evaluation.
A stage that finished is not rerun; an interrupted sweep or training run is resumed from its own state.
"""

from __future__ import annotations

import sys

from dspy_rl.sweeps.pipeline import BUDGET_KEYS, PipelineStopped, run_pipeline, split_argv, summary_line

__all__ = ["BUDGET_KEYS", "main", "split_argv"]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(
            f"usage: dspy-rl pipeline run_dir=DIR [sweep.<key>=V ...] [train.<key>=V ...] [eval.<key>=V ...]\n{__doc__}"
        )
        print(
            "settings (key=value):\n"
            "  run_dir\n      the pipeline's directory (state, sweep/, train/, results.md); required\n"
            "  sweep.<key>\n      any `dspy-rl sweep` setting (see `dspy-rl sweep --help`)\n"
            "  train.<key>\n      any `dspy-rl train` setting, applied over the best trial's configuration\n"
            "  eval.episodes\n      episodes of the final evaluation (default 1000)\n"
            "  eval.greedy\n      evaluate the most likely actions (default true)"
        )
        return 0
    try:
        state, run_dir = run_pipeline(list(argv))
    except PipelineStopped as exc:
        print(f"dspy-rl pipeline: {exc}", file=sys.stderr)
        return 1
    print(summary_line(state, run_dir))
    return 0
