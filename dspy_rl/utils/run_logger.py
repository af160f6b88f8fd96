"""Metrics sinks for a run: metrics.jsonl, TensorBoard, optional W&B, a tqdm progress bar, a curve PNG."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def truncate_metrics(path: Path, max_step: int) -> None:
    """Drop rows logged after ``max_step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if json.loads(r).get("env_steps", 0) <= max_step]
    path.write_text("".join(r + "\n" for r in kept))


class RunLogger:
    def __init__(
        self, run_dir: Path, cfg: Any, total_steps: int, start_step: int, config: dict[str, Any]
    ) -> None:
        self.run_dir, self.cfg = run_dir, cfg
        self.metrics_path = run_dir / "metrics.jsonl"
        truncate_metrics(self.metrics_path, start_step)
        self._metrics_file = self.metrics_path.open("a")
        self.tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint.
            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        self.wandb = None
        if cfg.wandb:
            import wandb

            mode = (
                "online" if cfg.wandb_mode == "online" and os.environ.get("WANDB_API_KEY") else cfg.wandb_mode
            )
            self.wandb = wandb.init(
                project=cfg.wandb_project,
                dir=str(run_dir),
                config=config,
                mode=mode,
                resume="allow",
                id=run_dir.name.replace(":", "-"),
            )
        self.bar = None
        if cfg.progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                unit="step",
                unit_scale=True,
                dynamic_ncols=True,
                mininterval=1.0,
            )

    def log(self, step: int, metrics: dict[str, float], advance: int) -> None:
        from dspy_rl.system.stats import usage_metrics

        usage = usage_metrics(self.run_dir)
        row = {"env_steps": step, **{k: v for k, v in metrics.items() if _finite(v)}, **usage}
        self._metrics_file.write(json.dumps(row) + "\n")
        self._metrics_file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if k != "env_steps":
                    self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(row, step=step)
        if self.bar is not None and "success_rate" in metrics:  # not the final-eval row
            self.bar.update(advance)
            # tqdm's own rate (env steps/s, smoothed) is on the bar; one iteration's rate reads low on a partial batch
            self.bar.set_postfix_str(
                f"success={metrics.get('success_rate', 0):.2f} "
                f"ret A/B/C={metrics.get('return_A', 0):.1f}/{metrics.get('return_B', 0):.1f}/"
                f"{metrics.get('return_C', 0):.1f}",
                refresh=False,
            )

    def close(self) -> None:
        self._metrics_file.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.cfg.plot:
            plot_learning_curve(self.metrics_path, self.run_dir / "learning_curve.png")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def plot_learning_curve(metrics_path: Path, out: Path) -> Path | None:
    """Success rate and episode return against env steps, from metrics.jsonl."""
    rows = (
        [json.loads(x) for x in metrics_path.read_text().splitlines() if x.strip()]
        if metrics_path.exists()
        else []
    )
    rows = [r for r in rows if "success_rate" in r]
    if not rows:
        log.warning("no metrics to plot in %s", metrics_path)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["env_steps"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(steps, [r["success_rate"] for r in rows], color="tab:green")
    ax1.set(xlabel="env steps", ylabel="success rate", ylim=(0, 1.02), title="Success rate")
    for key, color in (("episode_return", "black"), ("return_A", "tab:blue"), ("return_B", "tab:orange")):
        if key in rows[0]:
            ax2.plot(steps, [r.get(key, float("nan")) for r in rows], label=key, color=color)
    ax2.set(xlabel="env steps", ylabel="return", title="Episode return (A: first tool, B: later tools)")
    ax2.legend()
    from matplotlib.ticker import EngFormatter

    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1.5M instead of overlapping digits
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
