"""``dspy-rl <command> [<subcommand>] [--flag value ...] [key=value ...]``.

Each command lives in ``dspy_rl.cli.<command>`` (or a module named in ``COMMANDS``) and exposes
``main(argv: list[str]) -> int``. Commands compose Hydra configs with :func:`dspy_rl.config.compose`.
"""

from __future__ import annotations

import importlib
import logging
import sys

#: command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("dspy_rl.cli.train", "train the tool policies with multi-policy PPO on Ray"),
    "eval": ("dspy_rl.cli.eval", "evaluate a policy (random, oracle, or a checkpoint) on a task suite"),
    "grpo": (
        "dspy_rl.cli.grpo",
        "GRPO: `train` on grouped JSONL / online, `mine` groups from the trace store",
    ),
    "judge": (
        "dspy_rl.cli.judge",
        "score a response in process, or --benchmark judge agreement on a labelled set",
    ),
    "serve": ("dspy_rl.cli.serve", "serve the judge ensemble on Ray Serve (`serve judges`)"),
    "stream": (
        "dspy_rl.cli.stream",
        "Kafka ingest (`stream ingest`) and continuous training (`stream train`)",
    ),
    "rl": (
        "dspy_rl.cli.rl",
        "inspect: `rl report` (runs), `rl recent` (latest actions), `rl verify-storage`",
    ),
    "system": (
        "dspy_rl.cli.system",
        "capacity guard: free disk/RAM/VRAM vs the guard settings (`system guard`)",
    ),
    "sweep": ("dspy_rl.cli.sweep", "cost-aware hyperparameter sweep with Ray Tune"),
    "dashboard": (
        "dspy_rl.cli.dashboard",
        "web UI + JSON API over runs, sweeps, auto mode, the trace store and the machine",
    ),
    "pipeline": (
        "dspy_rl.cli.pipeline",
        "sweep -> train with the best config -> eval, resumable, one results page",
    ),
    "envs": ("dspy_rl.cli.envs", "ToolEnv suites: `envs generate` (seeded, validated), `envs check`"),
    "shell": (
        "dspy_rl.cli.shell",
        "real commands in the namespace sandbox: `shell exec --workspace DIR -- CMD`",
    ),
    "submit": ("dspy_rl.cli.submit", "submit a command as a Ray job: `dspy-rl submit -- train <overrides>`"),
}


def _usage() -> str:
    lines = ["usage: dspy-rl <command> [<subcommand>] [--flag value ...] [key=value ...]", "", "commands:"]
    lines += [f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("")
    lines.append("Every setting is a Hydra key (key=value); `dspy-rl <command> --help` shows the config.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(
            f"dspy-rl: unknown command {name!r}; choose one of {', '.join(COMMANDS)}\n\n{_usage()}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except ConfigError as exc:
        print(f"dspy-rl {name}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except NonFiniteError as exc:
        print(f"dspy-rl {name}: stopped: {exc}", file=sys.stderr)
        return 1
    except CapacityError as exc:
        print(f"dspy-rl {name}: {exc}", file=sys.stderr)
        return 3
    except StoreError as exc:
        print(f"dspy-rl {name}: trace store: {exc}; point store= at a writable SQLite file", file=sys.stderr)
        return 2


from dspy_rl.config import ConfigError  # noqa: E402  (re-exported for commands)
from dspy_rl.system.guard import CapacityError  # noqa: E402
from dspy_rl.traces.store import StoreError  # noqa: E402
from dspy_rl.utils.finite import NonFiniteError  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
