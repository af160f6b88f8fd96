"""Atomic checkpoints (:mod:`dspy_rl.utils.atomic`): temporary file, fsync, then ``os.replace``.

A crash mid-write leaves the previous checkpoint intact; a reader never sees a half-written file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dspy_rl.utils.atomic import atomic_torch_save

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (anything ``torch.save`` accepts) to ``path``."""
    target = Path(path)
    atomic_torch_save(state, target)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}; was the run started with this run_dir?")
    return torch.load(p, map_location="cpu", weights_only=False)
