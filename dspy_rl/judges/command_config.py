"""Settings of ``dspy-rl judge`` (conf/judge.yaml): in-process scoring and the agreement benchmark."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require

MODEL_TYPES = ("ensemble", "rubric", "embedding", "transformer")


@dataclass
class JudgeCommandConfig:
    model_type: str = "rubric"
    """``rubric``, ``embedding`` (MiniLM cosine), ``transformer`` (needs ``checkpoint``) or ``ensemble`` (rubric +
    embedding, + transformer when ``checkpoint`` is set; weights 1/1/2)."""
    checkpoint: str | None = None
    """A reward model written by ``dspy-rl serve train-judge`` (judge.pt)."""
    benchmark: bool = False
    """Score the labelled set built from ``task`` and print AUC, top-1 agreement and items/s as JSON."""
    task: str = "tool_commands"
    """Text task (envs/text_tasks) the labelled set is built from: its answer is good, two wrong commands bad."""
    limit: int = 200
    """At most this many prompts of the task in the labelled set (3 candidates each)."""
    seed: int = 0
    """Seed of the prompt sample and of the wrong commands."""
    query: str | None = None
    """The prompt to score a response to (without ``benchmark``)."""
    response: str | None = None
    """The response to score (without ``benchmark``)."""
    reference: str | None = None
    """An optional reference answer."""

    def __post_init__(self) -> None:
        require(
            self.model_type in MODEL_TYPES, "model_type", self.model_type, "one of " + ", ".join(MODEL_TYPES)
        )
        require(self.limit >= 1, "limit", self.limit, "an integer >= 1")
        require(
            self.model_type != "transformer" or bool(self.checkpoint),
            "checkpoint",
            self.checkpoint,
            "a reward model path for model_type=transformer (dspy-rl serve train-judge --pairs P --out D)",
        )
        require(
            self.benchmark or (self.query is not None and self.response is not None),
            "query",
            self.query,
            "--query Q --response R to score one response, or --benchmark",
        )


ConfigStore.instance().store(name="judge_schema", node=JudgeCommandConfig)
