"""Training checkpoints, written atomically (:mod:`dspy_rl.utils.atomic`).

A reader sees either the previous checkpoint or the new one, never a torn file, even if the process is SIGKILLed
mid-write. ``latest`` names the newest checkpoint and is itself replaced atomically.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from dspy_rl.utils.atomic import atomic_torch_save, atomic_write_bytes

log = logging.getLogger(__name__)
CKPT_DIR = "checkpoints"


def save_checkpoint(run_dir: str | Path, iteration: int, state: dict[str, Any], keep: int = 3) -> Path:
    """Write ``checkpoints/ckpt_<iteration>.pt`` atomically, point ``latest`` at it, prune old ones."""
    ckpt_dir = Path(run_dir) / CKPT_DIR
    path = ckpt_dir / f"ckpt_{iteration:07d}.pt"
    atomic_torch_save(state, path)
    atomic_write_bytes(ckpt_dir / "latest", path.name.encode())
    for old in sorted(ckpt_dir.glob("ckpt_*.pt"))[:-keep]:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpt_dir = Path(run_dir) / CKPT_DIR
    pointer = ckpt_dir / "latest"
    if pointer.exists():
        path = ckpt_dir / pointer.read_text().strip()
        if path.exists():
            return path
    found = sorted(ckpt_dir.glob("ckpt_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)
