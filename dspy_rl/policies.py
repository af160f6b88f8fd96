"""Load trained ToolEnv policies from a `dspy-rl train` checkpoint or run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dspy_rl.envs.padded import PadSpec
from dspy_rl.models.policy import MultiPolicy
from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint


def _load_state(path: str | Path) -> tuple[Path, dict[str, Any]]:
    path = Path(path)
    ckpt_path = latest_checkpoint(path) if path.is_dir() else path
    if ckpt_path is None or not ckpt_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: pass a `dspy-rl train` run directory or a ckpt_*.pt file"
        )
    return ckpt_path, load_checkpoint(ckpt_path)


def load_policy(path: str | Path) -> MultiPolicy:
    """A :class:`MultiPolicy` (A, B, C) in eval mode from a checkpoint file or a run directory."""
    ckpt_path, state = _load_state(path)
    if "model_spec" not in state or "learner" not in state:
        raise ValueError(f"{ckpt_path} is not a `dspy-rl train` checkpoint (missing model_spec/learner)")
    policy = MultiPolicy(**state["model_spec"])
    policy.load_state_dict(state["learner"]["model"])
    return policy.eval()


def checkpoint_pad(path: str | Path) -> PadSpec | None:
    """The padded layout a curriculum run's policy was trained on (None for a single-suite run)."""
    _, state = _load_state(path)
    suites = ((state.get("config") or {}).get("curriculum") or {}).get("suites")
    return PadSpec.of_suites(suites) if suites else None
