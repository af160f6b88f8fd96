"""Configuration of ``dspy-rl system guard`` (schema of ``conf/system.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from dspy_rl.system.guard import GuardConfig


@dataclass
class SystemConfig:
    """``dspy-rl system guard [--json] [guard.min_free_gb=..] [path=..]``."""

    guard: GuardConfig = field(default_factory=GuardConfig)
    """Thresholds (the same ``guard`` block that train, grpo train and stream auto take)."""
    path: str = "runs"
    """Directory whose filesystem's free space is checked (the nearest existing parent if it does not exist)."""
    json: bool = False
    """Print the report as JSON."""


ConfigStore.instance().store(name="system_schema", node=SystemConfig)
