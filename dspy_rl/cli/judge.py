"""``dspy-rl judge``: score one response in process, or benchmark judge agreement on a labelled set.

  dspy-rl judge --query "goal: show the readme . command:" --response "cat README.md"
  dspy-rl judge --model-type embedding --benchmark --limit 50
  dspy-rl judge --model-type transformer --checkpoint runs/judge/judge.pt --benchmark

``--model-type``: ``rubric`` (rules), ``embedding`` (MiniLM cosine), ``transformer`` (a reward model trained with
``dspy-rl serve train-judge``; needs ``--checkpoint``), ``ensemble`` (rubric + embedding, + transformer when
``--checkpoint`` is given, weights 1/1/2). ``--benchmark`` scores the labelled set built from the text task
``tool_commands`` (``--task``): per prompt the task's answer is labelled good and two wrong commands bad (see
dspy_rl/judges/benchmark.py); prints AUC, top-1 agreement and items/s as JSON.
"""

from __future__ import annotations

import json

from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.judges.command_config import JudgeCommandConfig


def build(model_type: str, checkpoint: str | None):
    """The judge named by ``--model-type`` (ConfigError in one line for a bad choice)."""
    from dspy_rl.judges.rubric import RubricJudge

    if model_type == "rubric":
        return RubricJudge()
    from dspy_rl.judges.embedding import EmbeddingJudge

    if model_type == "embedding":
        return EmbeddingJudge()
    from dspy_rl.judges.transformer import TransformerJudge

    try:
        transformer = TransformerJudge(checkpoint) if checkpoint else None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"--checkpoint {checkpoint}: cannot load a reward model: {exc}") from exc
    if model_type == "transformer":
        return transformer
    from dspy_rl.judges.local_ensemble import LocalEnsemble

    members = [RubricJudge(), EmbeddingJudge()] + ([transformer] if transformer else [])
    return LocalEnsemble(members, {"rubric": 1.0, "embedding": 1.0, "transformer": 2.0})


def main(argv: list[str]) -> int:
    from dspy_rl.cli.help import render, wants_help

    if wants_help(argv):
        print(render(__doc__ or "", "judge", JudgeCommandConfig))
        return 0
    args = to_object(compose("judge", argv), JudgeCommandConfig)
    judge = build(args.model_type, args.checkpoint)
    if args.benchmark:
        from dspy_rl.grpo.tasks import load_task
        from dspy_rl.judges.benchmark import benchmark, labelled_set

        try:
            task = load_task(args.task)
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"task={args.task}: {exc}") from exc
        print(json.dumps(benchmark(judge, labelled_set(task.items, args.limit, args.seed))))
        return 0
    from dspy_rl.judges.base import JudgeItem

    item = JudgeItem(args.query or "", args.response or "", args.reference)
    print(json.dumps({"judge": judge.name, **judge.score_batch([item])[0].to_dict()}))
    return 0
