"""Load trained ToolEnv policies from a `dspy-rl train` checkpoint or run directory."""

from __future__ import annotations

from pathlib import Path

from dspy_rl.models.policy import MultiPolicy
from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint


def load_policy(path: str | Path) -> MultiPolicy:
    """A :class:`MultiPolicy` (A, B, C) in eval mode from a checkpoint file or a run directory."""
    path = Path(path)
    ckpt_path = latest_checkpoint(path) if path.is_dir() else path
    if ckpt_path is None or not ckpt_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: pass a `dspy-rl train` run directory or a ckpt_*.pt file"
        )
    state = load_checkpoint(ckpt_path)
    if "model_spec" not in state or "learner" not in state:
        raise ValueError(f"{ckpt_path} is not a `dspy-rl train` checkpoint (missing model_spec/learner)")
    policy = MultiPolicy(**state["model_spec"])
    policy.load_state_dict(state["learner"]["model"])
    return policy.eval()
