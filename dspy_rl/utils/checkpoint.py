"""Training checkpoints, written atomically (:mod:`dspy_rl.utils.atomic`).

A reader sees either the previous checkpoint or the new one, never a torn file, even if the process is SIGKILLed
mid-write. ``latest`` names the newest checkpoint and is itself replaced atomically.
"""

from __future__ import annotations

import logging
import threading
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


def _snapshot(obj: Any) -> Any:
    """A copy of ``obj`` whose tensors are cloned (containers rebuilt, everything else shared)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes :func:`save_checkpoint` files on a background thread, one at a time.

    ``save`` clones the state's tensors (so the next update cannot change what gets written) and returns; the
    serialization, fsyncs and renames run while training goes on. A write still running when the next one is due
    is waited for, and :meth:`wait` waits for the last. A failed write is raised by the next ``save`` or ``wait``.
    Atomicity is :func:`save_checkpoint`'s: a process killed mid-write leaves the previous checkpoint.
    """

    def __init__(self, run_dir: str | Path, keep: int = 3) -> None:
        self.run_dir, self.keep = run_dir, keep
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, iteration: int, state: dict[str, Any]) -> None:
        self.wait()
        self._thread = threading.Thread(
            target=self._write, args=(iteration, _snapshot(state)), name="checkpoint-writer", daemon=True
        )
        self._thread.start()

    def _write(self, iteration: int, state: dict[str, Any]) -> None:
        try:
            save_checkpoint(self.run_dir, iteration, state, self.keep)
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    def wait(self, raise_error: bool = True) -> None:
        """Block until the pending write is on disk; raise its error (unless ``raise_error`` is false)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None and raise_error:
            raise RuntimeError(f"writing a checkpoint under {self.run_dir} failed: {error}") from error


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
