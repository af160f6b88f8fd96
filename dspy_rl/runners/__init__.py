"""EnvRunners: own a batched Rust env and a CPU copy of the policies; return rollouts as arrays."""

from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec
from dspy_rl.runners.pool import RunnerPool

__all__ = ["EnvRunner", "RolloutSpec", "RunnerPool"]
