"""The torch device of a run (env training's learners, text GRPO), from a ``device`` setting."""

from __future__ import annotations

import torch

from dspy_rl.config import ConfigError


def resolve_device(name: str, key: str = "runtime.device") -> torch.device:
    """``auto`` -> CUDA when present else CPU; ``cpu``, ``cuda``, ``cuda:<i>`` as given. A CUDA request without a
    visible GPU is a :class:`ConfigError` naming the setting ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"{key}={name!r} but no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
            f"use {key}=auto or {key}=cpu, or run on a machine with a GPU"
        )
    return torch.device(name)
