"""``dspy-rl envs``: generate and check ToolEnv task suites.

subcommands: generate (a seeded, validated suite from a catalog), check (load suites and summarize them)

    dspy-rl envs generate --preset expert --seed 3 --out /tmp/expert-3.json        # a member of the expert family
    dspy-rl envs generate --catalog envs/catalogs/expert.json --tasks 16 --min-plan 10 --max-plan 30 \\
        --episode-len 60 --out /tmp/mine.json
    dspy-rl envs generate --catalog envs/catalogs/expert.json --goal released,db_verified --goal merged \\
        --out /tmp/two.json                                                         # explicit (validated) tasks
    dspy-rl envs check expert /tmp/mine.json                                        # load, plan, print a summary

Every task written is reachable (the oracle planner finds its plan); an unreachable explicit goal, an unknown
fact or an impossible plan-length window fails with one line before anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys

from dspy_rl.envs.generate import PRESETS, GenerateError, GenerateSpec, preset_spec, write_suite
from dspy_rl.envs.suite import SuiteError, load_suite


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dspy-rl envs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="sub", required=True)
    gen = sub.add_parser("generate", help="draw a seeded task suite from a catalog")
    gen.add_argument("--out", required=True, help="suite JSON file to write")
    gen.add_argument(
        "--preset", choices=sorted(PRESETS), help="start from a preset (catalog and all settings)"
    )
    gen.add_argument("--catalog", help="catalog JSON file (required without --preset)")
    gen.add_argument("--name", help="suite name (default: the preset's name, or the output file's stem)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--tasks", type=int, dest="num_tasks")
    gen.add_argument("--min-goals", type=int)
    gen.add_argument("--max-goals", type=int)
    gen.add_argument("--min-plan", type=int)
    gen.add_argument("--max-plan", type=int)
    gen.add_argument("--episode-len", type=int)
    gen.add_argument("--num-args", type=int)
    gen.add_argument("--min-candidates", type=int)
    gen.add_argument("--start-prob", type=float)
    gen.add_argument("--distractor-prob", type=float)
    gen.add_argument(
        "--goal", action="append", help="an explicit task's goal facts, comma-separated (repeatable)"
    )
    gen.add_argument("--start", action="append", help="start facts of the matching --goal, comma-separated")
    check = sub.add_parser("check", help="load suites (names or paths) and print a summary")
    check.add_argument("suites", nargs="+")
    return parser


def _generate(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.preset:
        spec = preset_spec(args.preset, args.seed, args.name)
    elif args.catalog:
        spec = GenerateSpec(catalog=args.catalog, seed=args.seed, name=args.name or Path(args.out).stem)
    else:
        raise GenerateError("give --preset or --catalog")
    for key in (
        "num_tasks",
        "min_goals",
        "max_goals",
        "min_plan",
        "max_plan",
        "episode_len",
        "num_args",
        "min_candidates",
        "start_prob",
        "distractor_prob",
    ):
        value = getattr(args, key)
        if value is not None:
            setattr(spec, key, value)
    if args.goal:
        spec.goals = [[f for f in g.split(",") if f] for g in args.goal]
        if args.start:
            if len(args.start) != len(args.goal):
                raise GenerateError(f"give one --start per --goal ({len(args.goal)}), got {len(args.start)}")
            spec.starts = [[f for f in s.split(",") if f] for s in args.start]
    elif args.start:
        raise GenerateError("--start needs --goal")
    out = write_suite(spec, args.out)
    suite = load_suite(out)
    plans = [len(t.plan) for t in suite.tasks]
    print(
        f"wrote {out}: {len(suite.tasks)} tasks, {len(suite.facts)} facts, {len(suite.tools)} tools, "
        f"plans {min(plans)}-{max(plans)} steps, episode_len {suite.episode_len}, obs_dim {suite.obs_dim}"
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    for name in args.suites:
        suite = load_suite(name)
        plans = [len(t.plan) for t in suite.tasks]
        goals = [bin(t.goal).count("1") for t in suite.tasks]
        print(
            json.dumps(
                {
                    "suite": suite.name,
                    "path": str(suite.path),
                    "tasks": len(suite.tasks),
                    "facts": len(suite.facts),
                    "tools": len(suite.tools),
                    "flaky_tools": sum(t.success_prob < 1.0 for t in suite.tools),
                    "plan_len": [min(plans), max(plans), round(sum(plans) / len(plans), 1)],
                    "multi_goal_tasks": sum(g > 1 for g in goals),
                    "episode_len": suite.episode_len,
                    "obs_dim": suite.obs_dim,
                }
            )
        )
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(_parser().format_help())
        return 0
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its one-line error (or a subcommand's help)
        return int(exc.code or 0)
    try:
        return _generate(args) if args.sub == "generate" else _check(args)
    except (GenerateError, SuiteError) as exc:
        print(f"dspy-rl envs {args.sub}: {exc}", file=sys.stderr)
        return 2
