"""Metrics sinks of a training run (env training and text GRPO): ``metrics.jsonl``, TensorBoard, optional W&B, a
tqdm progress bar and a learning-curve PNG, configured by one :class:`LoggingConfig`."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dspy_rl.config import require

log = logging.getLogger(__name__)

#: A learning-curve panel: (title, y label, metric keys plotted against the step).
Panel = tuple[str, str, Sequence[str]]


@dataclass
class LoggingConfig:
    tensorboard: bool = True
    """Write TensorBoard event files to ``<run_dir>/tb``."""
    wandb: bool = False
    """Log to Weights & Biases (offline unless ``wandb_mode=online``)."""
    wandb_project: str = "dspy-rl"
    """W&B project name."""
    wandb_mode: str = "offline"
    """W&B mode: ``offline``, ``online`` or ``disabled``."""
    progress_bar: bool = True
    """tqdm progress bar on stderr with the run's rate and latest metrics."""
    plot: bool = True
    """Write ``learning_curve.png`` at the end of the run."""
    log_every: int = 1
    """Iterations (steps) between metric writes."""

    def __post_init__(self) -> None:
        require(
            self.wandb_mode in ("offline", "online", "disabled"),
            "logging.wandb_mode",
            self.wandb_mode,
            "'offline', 'online' or 'disabled'",
        )
        require(self.log_every >= 1, "logging.log_every", self.log_every, "an integer >= 1")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (none if it does not exist)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return read_jsonl_rows(path)


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a metrics file, one per line. A line that is not a JSON object (the torn last line a
    kill during a write leaves) is dropped with a warning naming the file and line."""
    rows: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            where = "its torn last line" if n == len(lines) else f"line {n}, which is not a JSON object"
            log.warning("%s: dropping %s (%r)", path, where, line[:80])
            continue
        rows.append(row)
    return rows


def truncate_metrics(path: Path, max_step: int, step_key: str = "env_steps") -> None:
    """Drop rows logged after ``max_step`` (written after the checkpoint a resumed run restarts from)."""
    if not path.exists():
        return
    kept = [json.dumps(r) for r in read_jsonl_rows(path) if r.get(step_key, 0) <= max_step]
    path.write_text("".join(r + "\n" for r in kept))


def _keep_first_rows(path: Path, rows: int) -> None:
    if path.exists():
        kept = [json.dumps(r) for r in read_jsonl_rows(path)][:rows]
        path.write_text("".join(k + "\n" for k in kept))


class RunLogger:
    """Writes one run's metrics. ``log`` appends a row (``{step_key: step, **finite numbers}``) to metrics.jsonl,
    TensorBoard (tags ``tb_prefix + key``) and W&B; ``advance`` moves the progress bar; ``close`` draws ``panels``
    into ``learning_curve.png``.

    On resume, rows the interrupted run wrote after the checkpoint it restarts from are dropped: those past
    ``start_step``, or all but the first ``keep_rows`` when the checkpoint saved the row count.
    """

    def __init__(
        self,
        run_dir: Path,
        cfg: LoggingConfig,
        total_steps: int,
        start_step: int,
        config: dict[str, Any],
        *,
        step_key: str = "env_steps",
        keep_rows: int | None = None,
        tb_prefix: str = "",
        unit: str = "step",
        postfix: Callable[[dict[str, Any]], str] | None = None,
        panels: Sequence[Panel] = (),
    ) -> None:
        self.run_dir, self.cfg = Path(run_dir), cfg
        self.step_key, self.tb_prefix, self.postfix, self.panels = step_key, tb_prefix, postfix, panels
        self.metrics_path = self.run_dir / "metrics.jsonl"
        if keep_rows is not None:
            _keep_first_rows(self.metrics_path, keep_rows)
        else:
            truncate_metrics(self.metrics_path, start_step, step_key)
        self.rows = len(read_metrics(self.run_dir))
        self._metrics_file = self.metrics_path.open("a", encoding="utf-8")
        self.tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint.
            self.tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start_step or None)
        self.wandb = None
        if cfg.wandb:
            import wandb

            mode = (
                "online" if cfg.wandb_mode == "online" and os.environ.get("WANDB_API_KEY") else cfg.wandb_mode
            )
            self.wandb = wandb.init(
                project=cfg.wandb_project,
                dir=str(self.run_dir),
                config=config,
                mode=mode,
                resume="allow",
                id=self.run_dir.name.replace(":", "-"),
            )
        self.bar = None
        if cfg.progress_bar:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                unit=unit,
                unit_scale=True,
                dynamic_ncols=True,
                mininterval=1.0,
            )

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        from dspy_rl.system.stats import usage_metrics

        usage = usage_metrics(self.run_dir)  # machine use (CPU, RAM, GPU, disk) with every row
        row = {self.step_key: step, **{k: v for k, v in metrics.items() if _finite(v)}, **usage}
        self._metrics_file.write(json.dumps(row) + "\n")
        self._metrics_file.flush()
        self.rows += 1
        if self.tb is not None:
            for k, v in row.items():
                if k != self.step_key:
                    self.tb.add_scalar(self.tb_prefix + k, v, step)
        if self.wandb is not None:
            self.wandb.log(row, step=step)

    def advance(self, steps: int, metrics: dict[str, Any]) -> None:
        """Move the progress bar by ``steps`` and show ``postfix(metrics)``."""
        if self.bar is not None:
            self.bar.update(steps)
            if self.postfix is not None:
                self.bar.set_postfix_str(self.postfix(metrics), refresh=False)

    def close(self) -> None:
        self._metrics_file.close()
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
        if self.cfg.plot and self.panels:
            plot_learning_curve(
                self.metrics_path, self.run_dir / "learning_curve.png", self.step_key, self.panels
            )


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def curve_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a learning curve plots. Before every env has run a whole episode only early successes have ended
    and the rolling success rate reads high; the env trainer marks the rows from which it is unbiased
    (``success_settled``, restarted at each curriculum stage), and the curve skips the others."""
    if any("success_settled" in r for r in rows):
        rows = [r for r in rows if r.get("success_settled", 1) >= 1]
    return rows


def plot_learning_curve(metrics_path: Path, out: Path, step_key: str, panels: Sequence[Panel]) -> Path | None:
    """One panel per ``(title, y label, keys)``: each key's values against ``step_key``, from metrics.jsonl."""
    rows = curve_rows(read_metrics(metrics_path.parent) if metrics_path.exists() else [])
    if not any(k in r for r in rows for _, _, keys in panels for k in keys):
        log.warning("no metrics to plot in %s", metrics_path)
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, ylabel, keys) in zip(axes[0], panels, strict=True):
        for key in keys:
            points = [(r[step_key], r[key]) for r in rows if key in r and step_key in r]
            if points:
                ax.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    "o-" if len(points) < 20 else "-",
                    label=key,
                )
        ax.set(xlabel=step_key.replace("_", " "), ylabel=ylabel, title=title)
        if len(keys) > 1:
            ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 100k, 1.5M instead of overlapping digits
    staged = [r for r in rows if "curriculum_stage" in r and step_key in r]
    for prev, row in zip(staged, staged[1:], strict=False):  # curriculum promotions
        if row["curriculum_stage"] != prev["curriculum_stage"]:
            for ax in axes[0]:
                ax.axvline(row[step_key], color="tab:purple", linestyle="--", alpha=0.6)
            axes[0][0].annotate(
                f"stage {row['curriculum_stage']}",
                (row[step_key], 0.03),
                color="tab:purple",
                fontsize=8,
                xycoords=("data", "axes fraction"),
            )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
