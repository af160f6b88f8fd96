"""Training metrics to ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class MetricsLogger:
    """Appends metric rows to ``<run_dir>/metrics.jsonl`` and scalars to ``<run_dir>/tb``.

    On resume, ``keep_rows`` (the row count saved in the checkpoint) truncates the file: rows written by the
    interrupted run after its last checkpoint are dropped, so each step appears once.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, keep_rows: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.rows = 0
        if keep_rows is not None and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if line.strip()][:keep_rows]
            self.path.write_text("".join(k + "\n" for k in kept))
            self.rows = len(kept)
        self._file = self.path.open("a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        from dspy_rl.system.stats import usage_metrics

        metrics = {**metrics, **usage_metrics(self.path.parent)}
        row = {"step": step, **metrics}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        self.rows += 1
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"grpo/{k}", v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
