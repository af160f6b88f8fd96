"""``dspy-rl grpo train ...`` (text GRPO, offline or online) and ``dspy-rl grpo mine ...`` (trace mining).

Examples::

    dspy-rl grpo train dataset=groups.jsonl steps=1000 model=bow
    dspy-rl grpo train mode=online task=tool_commands model=tiny-gpt2 steps=300 lr=3e-3
    dspy-rl grpo train resume=runs/grpo/20260101-120000 steps=2000
    dspy-rl grpo mine --hours 48 --out groups.jsonl
    dspy-rl grpo apply-policy --hours 24 --top-k 3 --bottom-k 1 --workspace . store=runs/traces.db
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from dspy_rl.cli.help import HELP_FLAGS, render, wants_help
from dspy_rl.config import compose, to_object

#: ``--flag`` aliases for common keys (``--steps 100`` is ``steps=100``).
ALIASES = {"data": "dataset", "out": "run_dir", "batch_size": "batch_groups"}
RETIRED = {
    "compile_model": "torch.compile is a setting of env training: dspy-rl train --compile-model (runtime.compile)",
}


def _train(argv: list[str]) -> int:
    if wants_help(argv):
        from dspy_rl.grpo.config import GRPOTrainConfig

        print(
            render(
                "usage: dspy-rl grpo train [--flag value ...] [key=value ...]\n\n" + __doc__,
                "grpo",
                GRPOTrainConfig,
            )
        )
        return 0
    argv = ["mode=online" if a == "--online" else a for a in argv]
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.dataset import DatasetError
    from dspy_rl.grpo.run import train

    cfg = to_object(compose("grpo", argv, ALIASES, retired=RETIRED), GRPOTrainConfig)
    from dspy_rl.system.guard import enforce

    enforce(cfg.guard, cfg.resume or cfg.run_dir or "runs", what="grpo train run")
    try:
        summary = train(cfg)
    except (DatasetError, FileNotFoundError) as exc:
        print(f"dspy-rl grpo train: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dataclasses.asdict(summary), indent=1, default=str))
    return 0


def _mine(argv: list[str]) -> int:
    """``dspy-rl grpo mine [--hours H] [--out groups.jsonl] [--db traces.db] [key=value ...]``."""
    from dspy_rl.traces.mining import ALIASES as MINE_ALIASES
    from dspy_rl.traces.mining import MineConfig, mine
    from dspy_rl.traces.mining import __doc__ as mine_doc
    from dspy_rl.traces.store import TraceStore, check_store_path

    if wants_help(argv):
        print(
            render(
                "usage: dspy-rl grpo mine [--hours H] [--out groups.jsonl] [key=value ...]\n\n"
                + str(mine_doc),
                "mine",
                MineConfig,
            )
        )
        return 0
    cfg = to_object(compose("mine", argv, MINE_ALIASES), MineConfig)
    if not Path(cfg.db).is_file():
        print(
            f"dspy-rl grpo mine: trace store {cfg.db!r} does not exist; pass db=<path to traces.db> "
            "(written by `dspy-rl stream ingest` or the TraceCollector SDK)",
            file=sys.stderr,
        )
        return 2
    check_store_path(cfg.db, "db")  # a file that is not SQLite: one line, before any work
    with TraceStore(cfg.db) as store:
        report = mine(store, cfg)
    print(json.dumps(dataclasses.asdict(report), indent=1))
    return 0


SUBCOMMANDS = {
    "train": "train a text policy with GRPO on grouped JSONL (dataset=...) or online (mode=online task=...)",
    "mine": "build GRPO groups from the trace store (dspy_rl.traces.mining)",
    "apply-policy": "write <workspace>/.dspy_policy.yaml from recent actions "
    "(--hours 24 --top-k 3 --bottom-k 1 --workspace DIR store=runs/traces.db)",
}


def _apply_policy(argv: list[str]) -> int:
    from dspy_rl.grpo.apply_policy import ApplyPolicyConfig, ApplyPolicyError, apply_policy

    if wants_help(argv):
        usage = "usage: dspy-rl grpo apply-policy --workspace DIR [--hours 24] [--top-k 3] [--bottom-k 1] store=DB"
        print(render(usage, "apply_policy", ApplyPolicyConfig))
        return 0
    cfg = to_object(compose("apply_policy", argv), ApplyPolicyConfig)
    try:
        path, doc = apply_policy(cfg)
    except ApplyPolicyError as exc:
        print(f"dspy-rl grpo apply-policy: {exc}", file=sys.stderr)
        return 2
    prefer = (
        ", ".join(f"{t['name']} ({t['mean_reward']:+.2f}, n={t['n']})" for t in doc["prefer"]["tools"]) or "-"
    )
    deny = ", ".join(f"{d['tool']} when {d['trigger']}" for d in doc["deny"]) or "-"
    print(f"wrote {path}: prefer {prefer}; deny {deny}")
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in HELP_FLAGS:
        print(render(__doc__, subcommands=SUBCOMMANDS))
        return 0
    sub, rest = argv[0], list(argv[1:])
    if sub == "train":
        return _train(rest)
    if sub == "mine":
        return _mine(rest)
    if sub in ("apply-policy", "apply_policy"):
        return _apply_policy(rest)
    print(
        f"dspy-rl grpo: unknown subcommand {sub!r}; choose 'train', 'mine' or 'apply-policy'", file=sys.stderr
    )
    return 2
