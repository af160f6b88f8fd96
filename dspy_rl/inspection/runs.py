"""Runs under a directory (``runs/`` by default) with their last metrics, best success, speed and status.

A run directory is one holding ``metrics.jsonl``: ``dspy-rl train`` (env PPO/GRPO), ``grpo train`` (text GRPO),
``stream train`` and each level of ``stream auto``. Its status comes from ``status.json``
(:mod:`dspy_rl.utils.run_status`); without one, a run whose metrics changed in the last ``active_s`` seconds is
``active`` and others ``unknown``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dspy_rl.utils.run_status import read_status

logger = logging.getLogger(__name__)

#: Metric keys shown as a run's "last metrics" (when present).
HEADLINE = (
    "env_steps", "iteration", "step", "success_rate", "episode_return", "reward_mean", "loss", "kl",
    "env_steps_per_s", "groups", "train/reward_mean", "rl/success_rate", "wall_s",
)  # fmt: skip
#: Keys that measure success, best first.
SUCCESS_KEYS = ("success_rate", "eval_success_rate", "rl/success_rate", "reward_mean", "train/reward_mean")
MAX_DEPTH = 4


@dataclass
class RunSummary:
    """One run in ``rl report``."""

    run_dir: str
    kind: str
    status: str
    rows: int
    last: dict[str, Any] = field(default_factory=dict)
    best_success: float | None = None
    best_success_key: str | None = None
    env_steps_per_s: float | None = None
    updated_at: float | None = None
    bad_lines: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def find_runs(root: str | os.PathLike[str], max_depth: int = MAX_DEPTH) -> list[Path]:
    """Directories under ``root`` (``root`` included) that hold a ``metrics.jsonl``, newest first."""
    root = Path(root)
    found: list[Path] = []
    if not root.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        if depth >= max_depth:
            dirnames.clear()
        dirnames[:] = [
            d for d in dirnames if d not in ("tb", "checkpoints", "model", "final", "groups", "bus")
        ]
        if "metrics.jsonl" in filenames:
            found.append(Path(dirpath))
    return sorted(found, key=lambda p: (p / "metrics.jsonl").stat().st_mtime, reverse=True)


def _kind(run: Path, status: dict[str, Any] | None) -> str:
    if status and status.get("kind"):
        return str(status["kind"])
    if (run / "checkpoints").is_dir():
        return "train"
    if (run / "checkpoint.pt").is_file() or (run / "dataset_report.json").is_file():
        return "grpo"
    if (run / "groups").is_dir() or (run / "trainer.pt").is_file():
        return "stream"
    return "unknown"


def read_rows(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON rows of a metrics file and how many lines were not JSON objects (each logged with where/why)."""
    rows: list[dict[str, Any]] = []
    bad = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError as exc:
                bad += 1
                logger.warning("%s:%d: not JSON (%s); skipped", path, lineno, exc)
                continue
            if not isinstance(row, dict):
                bad += 1
                logger.warning("%s:%d: not a JSON object; skipped", path, lineno)
                continue
            rows.append(row)
    return rows, bad


def summarize_run(run: Path, active_s: float = 120.0) -> RunSummary:
    """Status, last metrics, best success and env steps/s of the run in ``run``."""
    metrics = run / "metrics.jsonl"
    rows, bad = read_rows(metrics)
    status_row = read_status(run)
    mtime = metrics.stat().st_mtime
    if status_row is not None:
        status = str(status_row.get("status"))
    else:
        status = "active" if time.time() - mtime < active_s else "unknown"
    train_rows = [r for r in rows if "eval_success_rate" not in r or "success_rate" in r]
    last_row = train_rows[-1] if train_rows else (rows[-1] if rows else {})
    last = {k: last_row[k] for k in HEADLINE if k in last_row}
    best, best_key = None, None
    for key in SUCCESS_KEYS:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if values:
            best, best_key = float(max(values)), key
            break
    speeds = [r["env_steps_per_s"] for r in rows if isinstance(r.get("env_steps_per_s"), (int, float))]
    speed = None
    if (
        len(rows) >= 2
        and isinstance(rows[-1].get("env_steps"), (int, float))
        and isinstance(rows[-1].get("wall_s"), (int, float))
    ):
        wall = float(rows[-1]["wall_s"])
        speed = float(rows[-1]["env_steps"]) / wall if wall > 0 else None
    elif speeds:
        speed = float(sum(speeds) / len(speeds))
    return RunSummary(
        run_dir=str(run),
        kind=_kind(run, status_row),
        status=status,
        rows=len(rows),
        last=last,
        best_success=best,
        best_success_key=best_key,
        env_steps_per_s=speed,
        updated_at=mtime,
        bad_lines=bad,
    )


def report_runs(root: str | os.PathLike[str], limit: int | None = None) -> list[RunSummary]:
    """:func:`summarize_run` for every run under ``root``, newest first (at most ``limit``)."""
    runs = find_runs(root)
    if limit is not None:
        runs = runs[:limit]
    return [summarize_run(r) for r in runs]


def store_summary(conn: Any) -> dict[str, Any]:
    """Span and trace counts and the newest span time of a store (a read-only connection)."""
    spans = conn.execute("SELECT COUNT(*), MAX(start_ts) FROM spans").fetchone()
    traces = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
    return {"spans": int(spans[0]), "traces": int(traces), "newest_span_ts": spans[1]}
