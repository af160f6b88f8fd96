"""Atomic checkpoints (:mod:`dspy_rl.utils.atomic`): temporary file, fsync, then ``os.replace``.

A crash mid-write leaves the previous checkpoint intact; a reader never sees a half-written file. The checkpoint
before the latest is kept beside it (``checkpoint.prev.pt``, a hard link to the old file), so a latest checkpoint
that was damaged on disk afterwards (truncated, zeroed, bit flips) still leaves one to resume from. Loading never
runs code from the file (:func:`dspy_rl.utils.checkpoint.safe_torch_load`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dspy_rl.utils.atomic import atomic_torch_save
from dspy_rl.utils.checkpoint import CheckpointError, safe_torch_load

log = logging.getLogger(__name__)
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (tensors and plain data) to ``path``; the file it replaces becomes
    ``checkpoint.prev.pt`` beside it."""
    target = Path(path)
    if target.is_file():
        prev = target.with_name(PREVIOUS_NAME)
        tmp = target.with_name(f".{PREVIOUS_NAME}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.link(target, tmp)
        os.replace(tmp, prev)
    atomic_torch_save(state, target)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` onto the CPU, without running code from it; a file
    that does not load is a :class:`~dspy_rl.utils.checkpoint.CheckpointError` naming it."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no checkpoint at {p}; was the run started with this run_dir?")
    return safe_torch_load(p)


def has_checkpoint(run_dir: str | os.PathLike[str]) -> bool:
    d = Path(run_dir)
    return (d / CHECKPOINT_NAME).is_file() or (d / PREVIOUS_NAME).is_file()


def load_latest_checkpoint(run_dir: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of a run that loads (``checkpoint.pt``, else ``checkpoint.prev.pt`` with a warning
    naming the one that did not), and its state."""
    failures: list[str] = []
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        path = Path(run_dir) / name
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path)
            if not isinstance(state, dict) or "trainer" not in state:
                raise CheckpointError(
                    f"checkpoint {path} cannot be loaded: it is not a `grpo train` checkpoint"
                )
        except CheckpointError as exc:
            failures.append(str(exc))
            log.warning("%s; trying the previous checkpoint", exc)
            continue
        if failures:
            log.warning("resuming from %s, the newest checkpoint that loads", path)
        return path, state
    raise CheckpointError(f"no checkpoint of {run_dir} loads: " + ("; ".join(failures) or "it has none"))
