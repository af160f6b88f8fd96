"""The run directory of a training run (env training and text GRPO): where it is, and its config files.

Layout shared by both: ``config.yaml`` (resolved config of the first start), ``checkpoints/`` (:mod:`.checkpoint`),
``metrics.jsonl``, ``tb/`` and ``learning_curve.png`` (:mod:`.run_logger`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import yaml


def new_run_dir(run_dir: str | Path | None, kind: str) -> Path:
    """``run_dir``, or ``runs/<kind>/<YYYY-mm-dd_HH-MM-SS>`` when it is None; created."""
    path = Path(run_dir) if run_dir else Path("runs") / kind / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_config(run_dir: Path, config: dict[str, Any], name: str = "config.yaml") -> Path:
    """Write the resolved config as YAML (``config.resume-<step>.yaml`` and such for later starts)."""
    path = run_dir / name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
