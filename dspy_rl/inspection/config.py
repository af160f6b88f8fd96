"""Configuration of ``dspy-rl rl report | recent | verify-storage`` (schema of ``conf/rl.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require


@dataclass
class InspectConfig:
    """Read-only views of runs and the trace store."""

    store: str = "runs/traces.db"
    """SQLite trace store (the same ``store=`` as ``stream ingest``)."""
    runs: str = "runs"
    """Directory searched for run directories (those holding metrics.jsonl) and their checkpoints."""
    limit: int = 20
    """``recent``: actions shown; ``report``: runs shown."""
    json: bool = False
    """Print JSON instead of a table."""

    def __post_init__(self) -> None:
        require(self.limit >= 1, "limit", self.limit, "an int >= 1")
        require(bool(self.store), "store", self.store, "a path to the SQLite trace store")


ConfigStore.instance().store(name="rl_schema", node=InspectConfig)
