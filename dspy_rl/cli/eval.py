"""``dspy-rl eval``: run a policy on a task suite and print success rate, mean return and mean length.

    dspy-rl eval suite=default policy=oracle episodes=2000
    dspy-rl eval env=hard policy=random env.backend=python
    dspy-rl eval policy=checkpoint checkpoint=runs/train/<run>/checkpoints/last.pt

The evaluator is :mod:`dspy_rl.evaluation` (a fixed episode quota per env slot, so short episodes are not
over-represented).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dspy_rl.cli.help import render, wants_help
from dspy_rl.config import asdict
from dspy_rl.evaluation import EvalConfig, evaluate, load_config

logger = logging.getLogger(__name__)


def main(argv: list[str]) -> int:
    if wants_help(argv):
        print(render(__doc__, "eval", EvalConfig))
        return 0
    cfg = load_config(argv)
    logger.info("eval config: %s", asdict(cfg))
    res = evaluate(cfg)
    if cfg.json:
        print(json.dumps(asdict(res)))
    else:
        rows: list[tuple[str, Any]] = [
            ("suite", res.suite),
            ("policy", res.policy),
            ("episodes", res.episodes),
            ("success rate", f"{res.success_rate:.3f}"),
            ("mean return", f"{res.mean_return:.3f}"),
            ("mean length", f"{res.mean_length:.2f}"),
            ("env steps/s", f"{res.env_steps / max(res.seconds, 1e-9):,.0f}"),
        ]
        for name, value in rows:
            print(f"{name:<14} {value}")
    return 0
