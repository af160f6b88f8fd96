"""The PPO phase of a streaming iteration: ``rl_steps`` more env steps of ``dspy-rl train`` in the simulator.

Each call continues one run directory (``<run_dir>/rl``) from its last checkpoint with ``total_env_steps`` raised by
``rl_steps``, through the trainer library (:class:`dspy_rl.trainer.Trainer`), so the policy, optimizer, env
streams and metrics carry over between iterations exactly as a ``resume=`` run does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


class PPOPhase:
    """``phase(iteration) -> metrics``: ``rl_steps`` PPO env steps, then the run's last metrics (``rl/*``)."""

    def __init__(self, run_dir: str | Path, rl_steps: int, overrides: Sequence[str] = ()) -> None:
        from dspy_rl.trainer import load_config

        if rl_steps < 1:
            raise ValueError(f"rl_steps={rl_steps} must be >= 1")
        self.run_dir = Path(run_dir)
        self.rl_steps = rl_steps
        self.overrides = list(overrides)
        load_config(self._overrides(rl_steps))  # fail on a bad override before the first iteration

    def _overrides(self, total: int) -> list[str]:
        fixed = [f"total_env_steps={total}", "logging.progress_bar=false", "logging.plot=false"]
        if (self.run_dir / "checkpoints").is_dir():
            fixed.append(f"resume={self.run_dir}")
        else:
            fixed.append(f"run_dir={self.run_dir}")
        return [*self.overrides, *fixed]

    def done_steps(self) -> int:
        """Env steps of the last checkpoint (0 before the first)."""
        from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint

        ckpt = latest_checkpoint(self.run_dir)
        return int(load_checkpoint(ckpt)["env_steps"]) if ckpt is not None else 0

    def __call__(self, iteration: int) -> dict[str, Any]:
        from dspy_rl.trainer import Trainer, load_config

        start = self.done_steps()
        result = Trainer(load_config(self._overrides(start + self.rl_steps))).run()
        keys = ("env_steps", "success_rate", "episode_return", "env_steps_per_s", "wall_s", "status")
        metrics = {f"rl/{k}": result[k] for k in keys if k in result}
        metrics["rl/new_env_steps"] = int(result.get("env_steps", start)) - start
        logger.info("iteration %d: PPO %d env steps, success %.3f", iteration, metrics["rl/new_env_steps"],
                    result.get("success_rate", float("nan")))  # fmt: skip
        return metrics
