"""The pipeline driver behind ``dspy-rl pipeline`` (:mod:`dspy_rl.cli.pipeline`): sweep -> a full training run with
the best configuration -> evaluation of the trained checkpoint, resumable from ``<run_dir>/pipeline.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dspy_rl.config import ConfigError

BUDGET_KEYS = ("total_env_steps",)  # sweep parameters that size a trial, not the full run


class PipelineStopped(RuntimeError):
    """A stage ended without a usable result (the message says which); rerunning the pipeline resumes it."""


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


@dataclass
class _Pipeline:
    """A pipeline's validated configuration and its state (``pipeline.json``)."""

    run_dir: Path
    state: dict[str, Any]
    sweep_cfg: Any
    train_argv: list[str]
    episodes: int
    greedy: bool

    def save(self) -> None:
        (self.run_dir / "pipeline.json").write_text(json.dumps(self.state, indent=1, default=str))
        (self.run_dir / "results.md").write_text(_page(self.state))


def _prepare(argv: list[str]) -> _Pipeline:
    """Parse ``argv`` (or the stored command line on resume) and validate every stage's configuration before
    anything runs (one line on error)."""
    from dspy_rl.sweeps.config import load_config as load_sweep_config
    from dspy_rl.trainer import load_config

    run_dir_s, sweep_argv, train_argv, eval_kw = split_argv(list(argv))
    run_dir = Path(run_dir_s)
    state_path = run_dir / "pipeline.json"
    state: dict[str, Any] = json.loads(state_path.read_text()) if state_path.exists() else {}
    if state.get("argv") and len(argv) == 1:
        argv = state["argv"]  # `dspy-rl pipeline run_dir=X` resumes with the original command line
        run_dir_s, sweep_argv, train_argv, eval_kw = split_argv(list(argv))
    state["argv"] = list(argv)
    sweep_cfg = load_sweep_config([*sweep_argv, f"run_dir={run_dir / 'sweep'}"])
    load_config([*train_argv, f"run_dir={run_dir / 'train'}"])
    episodes = int(eval_kw.get("episodes", 1000))
    greedy = eval_kw.get("greedy", "true").lower() in ("1", "true", "yes")
    if episodes < 1:
        raise ConfigError(f"eval.episodes={episodes} is not allowed; expected an integer >= 1")
    run_dir.mkdir(parents=True, exist_ok=True)
    return _Pipeline(run_dir, state, sweep_cfg, train_argv, episodes, greedy)


def _sweep_stage(p: _Pipeline) -> None:
    from dspy_rl.sweeps.run import run_sweep

    sweep_cfg = p.sweep_cfg
    if (p.run_dir / "sweep" / "tune").exists():
        sweep_cfg = replace(sweep_cfg, resume=True)
    out = run_sweep(sweep_cfg)
    if out["best"] is None:
        raise PipelineStopped(f"the sweep found no trial with a finite {sweep_cfg.sweep.metric}")
    ok = [r for r in out["rows"] if r["score"] is not None]
    sign = 1 if sweep_cfg.sweep.mode == "max" else -1
    ok.sort(key=lambda r: -sign * r["score"])
    p.state["sweep"] = {
        "best": out["best"],
        "top": [{k: r[k] for k in ("score", "cost", "config")} for r in ok[:5]],
        "trials": len(out["rows"]),
        "metric": sweep_cfg.sweep.metric,
    }
    p.save()


def _train_stage(p: _Pipeline, overrides: list[str]) -> None:
    from dspy_rl.trainer import Trainer, load_config
    from dspy_rl.utils.checkpoint import latest_checkpoint

    train_dir = p.run_dir / "train"
    resume = [f"resume={train_dir}"] if latest_checkpoint(train_dir) is not None else []
    cfg = load_config([*overrides, f"run_dir={train_dir}", *resume])
    result = Trainer(cfg).run()
    if result["status"] not in ("completed", "converged", "reached target_success"):
        raise PipelineStopped(f"training stopped ({result['status']}); rerun to resume")
    p.state["train"] = {
        "overrides": overrides,
        **{k: result[k] for k in ("status", "env_steps", "success_rate", "wall_s", "reached_0.9")},
    }
    p.save()


def _eval_stage(p: _Pipeline, overrides: list[str]) -> None:
    from dspy_rl.evaluation import EvalConfig, evaluate
    from dspy_rl.trainer import load_config
    from dspy_rl.utils.checkpoint import latest_checkpoint

    cfg = load_config([*overrides, f"run_dir={p.run_dir / 'train'}"])
    ckpt = latest_checkpoint(p.run_dir / "train")
    res = evaluate(
        EvalConfig(
            env=replace(cfg.env, seed=cfg.env.seed + 1_000_007),
            policy="checkpoint",
            checkpoint=str(ckpt),
            episodes=p.episodes,
            greedy=p.greedy,
            seed=cfg.env.seed + 1_000_007,
        )
    )
    p.state["eval"] = {
        "episodes": res.episodes,
        "greedy": p.greedy,
        "success_rate": res.success_rate,
        "mean_return": res.mean_return,
        "mean_length": res.mean_length,
    }
    p.save()


def run_pipeline(argv: list[str]) -> tuple[dict[str, Any], Path]:
    """Run (or resume) the pipeline of ``argv`` (``key=value`` tokens); returns its state and run directory.

    Raises :class:`ConfigError` on a bad setting and :class:`PipelineStopped` when a stage has no usable result.
    """
    p = _prepare(argv)
    if not p.state.get("sweep"):
        _sweep_stage(p)
    overrides = _train_overrides(p.state["sweep"]["best"], p.train_argv)
    if not p.state.get("train"):
        _train_stage(p, overrides)
    if not p.state.get("eval"):
        _eval_stage(p, overrides)
    p.save()
    return p.state, p.run_dir


def summary_line(state: dict[str, Any], run_dir: Path) -> str:
    """What ``dspy-rl pipeline`` prints when the pipeline is done."""
    ev = state["eval"]
    return (
        f"pipeline done: best sweep {state['sweep']['metric']}={_fmt(state['sweep']['best']['score'])}; "
        f"trained {state['train']['env_steps']:,} env steps; eval success {ev['success_rate']:.3f} over "
        f"{ev['episodes']} episodes\nresults: {run_dir / 'results.md'}"
    )
