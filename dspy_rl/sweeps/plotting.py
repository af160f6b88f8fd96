"""Score-against-cost scatter of a sweep with its Pareto front (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dspy_rl.sweeps.pareto import pareto_front


def plot_pareto(
    scores: Sequence[float],
    costs: Sequence[float],
    path: str | Path,
    metric: str = "score",
    cost_label: str = "cost",
    mode: str = "max",
    title: str | None = None,
    failed_costs: Sequence[float] = (),
) -> Path:
    """Write a PNG of every trial's (cost, score), the Pareto front as a step line, failures as crosses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    sign = 1.0 if mode == "max" else -1.0
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    ax.scatter(c, s, s=22, alpha=0.65, label="trials")
    if len(s):
        front = pareto_front(sign * s, c)
        ax.step(c[front], s[front], where="post", color="C3", lw=1.8, label="Pareto front")
        ax.scatter(c[front], s[front], s=40, color="C3", zorder=3)
    if len(failed_costs):
        y0 = float(np.nanmin(s)) if len(s) else 0.0
        ax.scatter(failed_costs, [y0] * len(failed_costs), marker="x", color="k", label="failed")
    if len(c) and c.min() > 0 and c.max() / max(c.min(), 1e-12) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(cost_label)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs {cost_label}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
