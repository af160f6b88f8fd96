"""The env trainer library behind ``dspy-rl train`` (:mod:`dspy_rl.cli.train`), sweeps and benchmarks."""

from dspy_rl.trainer.config import AlgoConfig, LoggingConfig, RuntimeConfig, TrainConfig
from dspy_rl.trainer.trainer import EVAL_SEED_OFFSET, Trainer, load_config, run_training

__all__ = [
    "EVAL_SEED_OFFSET",
    "AlgoConfig",
    "LoggingConfig",
    "RuntimeConfig",
    "TrainConfig",
    "Trainer",
    "load_config",
    "run_training",
]
