"""``dspy-rl system guard [--json] [guard.min_free_gb=N guard.min_ram_gb=N guard.min_vram_mb=N] [path=DIR]``.

Prints free disk / RAM / VRAM against the capacity guard's thresholds (the ``guard`` settings of train, grpo
train and stream auto) and the machine's CPU/RAM/GPU/disk use. Exit 0 when every check passes, 3 when one fails.
"""

from __future__ import annotations

import json
import sys

from dspy_rl.cli.help import render, wants_help
from dspy_rl.config import compose, to_object
from dspy_rl.system.config import SystemConfig

SUBCOMMANDS = {"guard": "free disk / RAM / VRAM against the guard's thresholds, and the machine's use"}
ALIASES = {
    "min_free_gb": "guard.min_free_gb",
    "min_ram_gb": "guard.min_ram_gb",
    "min_vram_mb": "guard.min_vram_mb",
}


def _guard(argv: list[str]) -> int:
    from dspy_rl.system.guard import check_capacity

    cfg: SystemConfig = to_object(compose("system", argv, ALIASES), SystemConfig)
    g = cfg.guard
    report = check_capacity(g.min_free_gb, g.min_ram_gb, g.min_vram_mb, cfg.path)
    if cfg.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        for check in report.checks:
            print(("ok    " if check.ok else "FAIL  ") + check.describe())
        s = {k: "-" if v is None else v for k, v in report.stats.items()}
        print(
            "use   cpu {cpu}%  ram {ru}/{rt} GB  disk free {df} GB  gpu {gu}%  vram {vu}/{vt} MB".format(
                cpu=s["cpu_percent"],
                ru=s["ram_used_gb"],
                rt=s["ram_total_gb"],
                df=s["disk_free_gb"],
                gu=s["gpu_util_percent"],
                vu=s["vram_used_mb"],
                vt=s["vram_total_mb"],
            )
        )
        if not report.ok:
            print(report.refusal("run"), file=sys.stderr)
    return 0 if report.ok else 3


def main(argv: list[str]) -> int:
    """Entry point of ``dspy-rl system``."""
    if not argv or wants_help(argv):
        print(render(__doc__, "system", SystemConfig, subcommands=SUBCOMMANDS))
        return 0
    if argv[0] != "guard":
        print(f"dspy-rl system: unknown subcommand {argv[0]!r}; choose 'guard'\n\n{__doc__}", file=sys.stderr)
        return 2
    return _guard(list(argv[1:]))
