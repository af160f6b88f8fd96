"""``dspy-rl grpo train ...`` (text GRPO, offline or online) and ``dspy-rl grpo mine ...`` (trace mining).

Examples::

    dspy-rl grpo train dataset=groups.jsonl steps=1000 model=bow
    dspy-rl grpo train mode=online task=tool_commands model=tiny-gpt2 steps=300 lr=3e-3
    dspy-rl grpo train resume=runs/grpo/20260101-120000 steps=2000
    dspy-rl grpo mine --hours 48 --out groups.jsonl
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys

from dspy_rl.config import compose, to_object

#: ``--flag`` aliases for common keys (``--steps 100`` is ``steps=100``).
ALIASES = {"data": "dataset", "out": "run_dir"}

USAGE = """usage: dspy-rl grpo <subcommand> [--flag value ...] [key=value ...]

subcommands:
  train   train a text policy with GRPO on grouped JSONL (dataset=...) or online (mode=online task=...)
  mine    build GRPO groups from the trace store (dspy_rl.traces.mining)

`dspy-rl grpo train --help` lists every config key with its documentation."""


def _config_help() -> str:
    import ast
    import inspect

    from dspy_rl.grpo.config import GRPOTrainConfig

    docs: dict[str, str] = {}
    tree = ast.parse(inspect.getsource(GRPOTrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())  # type: ignore[union-attr]
    lines = ["dspy-rl grpo train [key=value ...]  (conf/grpo.yaml)", ""]
    for f in dataclasses.fields(GRPOTrainConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        lines.append(f"  {f.name}={default!r}\n      {docs.get(f.name, '')}")
    return "\n".join(lines)


def _train(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(_config_help())
        return 0
    argv = ["mode=online" if a == "--online" else a for a in argv]
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.dataset import DatasetError
    from dspy_rl.grpo.run import train

    cfg = to_object(compose("grpo", argv, ALIASES), GRPOTrainConfig)
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
    try:
        mining = importlib.import_module("dspy_rl.traces.mining")
    except ModuleNotFoundError as exc:
        print(
            f"dspy-rl grpo mine: trace mining is not available ({exc}); it is provided by dspy_rl.traces.mining "
            "(the traces component). Install/update dspy-rl with that module.",
            file=sys.stderr,
        )
        return 2
    return int(mining.main(argv) or 0)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    sub, rest = argv[0], list(argv[1:])
    if sub == "train":
        return _train(rest)
    if sub == "mine":
        return _mine(rest)
    print(f"dspy-rl grpo: unknown subcommand {sub!r}; choose 'train' or 'mine'\n\n{USAGE}", file=sys.stderr)
    return 2
