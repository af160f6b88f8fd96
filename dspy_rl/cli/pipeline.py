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

import json
import logging
import sys
from pathlib import Path
from typing import Any

from dspy_rl.config import ConfigError

log = logging.getLogger(__name__)
BUDGET_KEYS = ("total_env_steps",)  # sweep parameters that size a trial, not the full run


def split_argv(argv: list[str]) -> tuple[str, list[str], list[str], dict[str, str]]:
    """(run_dir, sweep overrides, train overrides, eval settings) from ``key=value`` tokens."""
    run_dir, sweep, train, evaluation = None, [], [], {}
    for tok in argv:
        key, eq, value = tok.partition("=")
        if not eq:
            raise ConfigError(
                f"unexpected argument {tok!r}: pass run_dir=, sweep.<key>=, train.<key>= or eval.<key>="
            )
        if key == "run_dir":
            run_dir = value
        elif key.startswith("sweep."):
            sweep.append(f"{key[6:]}={value}")
        elif key.startswith("train."):
            train.append(f"{key[6:]}={value}")
        elif key in ("eval.episodes", "eval.greedy"):
            evaluation[key[5:]] = value
        else:
            raise ConfigError(
                f"unknown key {key!r}: use run_dir, sweep.<key>, train.<key>, eval.episodes, eval.greedy"
            )
    if not run_dir:
        raise ConfigError("run_dir=<dir> is required (the pipeline's state lives there, so it can resume)")
    return run_dir, sweep, train, evaluation


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _train_overrides(best: dict[str, Any], train: list[str]) -> list[str]:
    chosen = [f"{k}={v}" for k, v in best["config"].items() if k not in BUDGET_KEYS]
    return [*chosen, *train]


def _page(state: dict[str, Any]) -> str:
    lines = ["# Pipeline results", "", f"Command: `dspy-rl pipeline {' '.join(state['argv'])}`", ""]
    sweep = state.get("sweep")
    if sweep:
        lines += [f"## Sweep ({sweep['trials']} trials, metric `{sweep['metric']}`)", ""]
        lines += ["| rank | score | cost | config |", "|---|---|---|---|"]
        for i, row in enumerate(sweep["top"], 1):
            cfg = " ".join(f"{k}={_fmt(v)}" for k, v in row["config"].items())
            lines.append(f"| {i} | {_fmt(row['score'])} | {_fmt(row['cost'])} | {cfg} |")
        lines += ["", "Pareto plot: `sweep/pareto.png`", ""]
    train = state.get("train")
    if train:
        lines += [
            "## Training with the best configuration",
            "",
            f"Overrides: `{' '.join(train['overrides'])}`",
            "",
        ]
        lines += [
            f"- status: {train['status']}, env steps {train['env_steps']:,}, rolling success "
            f"{train['success_rate']:.3f}, wall {train['wall_s']:.0f} s",
            f"- first rolling success >= 0.9: {train['reached_0.9'] or 'not reached'}",
            "- learning curve: `train/learning_curve.png`",
            "",
        ]
    ev = state.get("eval")
    if ev:
        lines += [
            "## Evaluation of the trained checkpoint",
            "",
            f"{ev['episodes']} episodes on fresh envs ({'greedy' if ev['greedy'] else 'sampled'}): success "
            f"{ev['success_rate']:.3f}, mean return {ev['mean_return']:.2f}, mean length {ev['mean_length']:.1f}",
            "",
        ]
    return "\n".join(lines)


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
    from dataclasses import replace

    from dspy_rl.cli import sweep as sweep_cmd
    from dspy_rl.evaluation import EvalConfig, evaluate
    from dspy_rl.trainer import Trainer, load_config
    from dspy_rl.utils.checkpoint import latest_checkpoint

    run_dir_s, sweep_argv, train_argv, eval_kw = split_argv(list(argv))
    run_dir = Path(run_dir_s)
    state_path = run_dir / "pipeline.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("argv") and len(argv) == 1:
        argv = state["argv"]  # `dspy-rl pipeline run_dir=X` resumes with the original command line
        run_dir_s, sweep_argv, train_argv, eval_kw = split_argv(list(argv))
    state["argv"] = list(argv)
    # Validate every stage's configuration before anything runs (one line on error).
    sweep_cfg = sweep_cmd.load_config([*sweep_argv, f"run_dir={run_dir / 'sweep'}"])
    load_config([*train_argv, f"run_dir={run_dir / 'train'}"])
    episodes = int(eval_kw.get("episodes", 1000))
    greedy = eval_kw.get("greedy", "true").lower() in ("1", "true", "yes")
    if episodes < 1:
        raise ConfigError(f"eval.episodes={episodes} is not allowed; expected an integer >= 1")
    run_dir.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        state_path.write_text(json.dumps(state, indent=1, default=str))
        (run_dir / "results.md").write_text(_page(state))

    if not state.get("sweep"):
        if (run_dir / "sweep" / "tune").exists():
            sweep_cfg = replace(sweep_cfg, resume=True)
        out = sweep_cmd.run_sweep(sweep_cfg)
        if out["best"] is None:
            print(
                f"dspy-rl pipeline: the sweep found no trial with a finite {sweep_cfg.sweep.metric}",
                file=sys.stderr,
            )
            return 1
        ok = [r for r in out["rows"] if r["score"] is not None]
        sign = 1 if sweep_cfg.sweep.mode == "max" else -1
        ok.sort(key=lambda r: -sign * r["score"])
        state["sweep"] = {
            "best": out["best"],
            "top": [{k: r[k] for k in ("score", "cost", "config")} for r in ok[:5]],
            "trials": len(out["rows"]),
            "metric": sweep_cfg.sweep.metric,
        }
        save()
    overrides = _train_overrides(state["sweep"]["best"], train_argv)
    if not state.get("train"):
        train_dir = run_dir / "train"
        resume = [f"resume={train_dir}"] if latest_checkpoint(train_dir) is not None else []
        cfg = load_config([*overrides, f"run_dir={train_dir}", *resume])
        result = Trainer(cfg).run()
        if result["status"] not in ("completed", "converged", "reached target_success"):
            print(
                f"dspy-rl pipeline: training stopped ({result['status']}); rerun to resume", file=sys.stderr
            )
            return 1
        state["train"] = {
            "overrides": overrides,
            **{k: result[k] for k in ("status", "env_steps", "success_rate", "wall_s", "reached_0.9")},
        }
        save()
    if not state.get("eval"):
        cfg = load_config([*overrides, f"run_dir={run_dir / 'train'}"])
        ckpt = latest_checkpoint(run_dir / "train")
        res = evaluate(
            EvalConfig(
                env=replace(cfg.env, seed=cfg.env.seed + 1_000_007),
                policy="checkpoint",
                checkpoint=str(ckpt),
                episodes=episodes,
                greedy=greedy,
                seed=cfg.env.seed + 1_000_007,
            )
        )
        state["eval"] = {
            "episodes": res.episodes,
            "greedy": greedy,
            "success_rate": res.success_rate,
            "mean_return": res.mean_return,
            "mean_length": res.mean_length,
        }
        save()
    save()
    ev = state["eval"]
    print(
        f"pipeline done: best sweep {state['sweep']['metric']}={_fmt(state['sweep']['best']['score'])}; "
        f"trained {state['train']['env_steps']:,} env steps; eval success {ev['success_rate']:.3f} over "
        f"{ev['episodes']} episodes\nresults: {run_dir / 'results.md'}"
    )
    return 0
