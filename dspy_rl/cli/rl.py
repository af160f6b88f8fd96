"""``dspy-rl rl <report|recent|verify-storage> [--json] [store=<sqlite file>] [runs=<dir>] [--limit N]``.

dspy-rl rl report                          # runs under runs/: status, last metrics, best success, env steps/s
dspy-rl rl recent --limit 20               # the latest agent actions in the trace store, newest first
dspy-rl rl verify-storage store=t.db       # schema, integrity, orphans, duplicate event ids, checkpoints; exit 1
                                           # naming each problem
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import Any

from dspy_rl.cli.help import render, wants_help
from dspy_rl.config import compose, to_object

ALIASES = {"db": "store"}
SUBCOMMANDS = {
    "report": "runs under runs/: status, last metrics, best success, env steps/s",
    "recent": "the latest agent actions in the trace store, newest first",
    "verify-storage": "schema, integrity, orphans, duplicate event ids, checkpoints; exit 1 naming each problem",
}


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _report(cfg: Any) -> int:
    from dspy_rl.inspection.readonly import StoreMissing, open_readonly
    from dspy_rl.inspection.runs import report_runs, store_summary

    runs = report_runs(cfg.runs, cfg.limit)
    store: dict[str, Any] | None
    try:
        conn = open_readonly(cfg.store)
        try:
            store = {"path": cfg.store, **store_summary(conn)}
        finally:
            conn.close()
    except (StoreMissing, Exception) as exc:  # a broken store is reported, not raised: report shows runs
        store = {"path": cfg.store, "error": str(exc)}
    if cfg.json:
        print(
            json.dumps({"runs_root": cfg.runs, "runs": [r.to_json() for r in runs], "store": store}, indent=1)
        )
        return 0
    if not runs:
        print(f"no runs under {cfg.runs!r} (directories holding metrics.jsonl)")
    for r in runs:
        last = " ".join(f"{k}={_fmt(v)}" for k, v in r.last.items())
        best = "-" if r.best_success is None else f"{r.best_success:.3f} ({r.best_success_key})"
        speed = "-" if r.env_steps_per_s is None else f"{r.env_steps_per_s:,.0f}"
        print(f"{r.run_dir}  [{r.kind}, {r.status}, updated {_ts(r.updated_at)}]")
        print(f"    best success {best}  env steps/s {speed}  rows {r.rows}")
        print(f"    last: {last or '-'}")
    if "error" in store:
        print(f"store {cfg.store}: {store['error']}")
    else:
        print(
            f"store {cfg.store}: {store['spans']} spans, {store['traces']} traces, newest {_ts(store['newest_span_ts'])}"
        )
    return 0


def _recent(cfg: Any) -> int:
    from dspy_rl.inspection.readonly import StoreMissing, open_readonly
    from dspy_rl.inspection.recent import recent_actions

    try:
        conn = open_readonly(cfg.store)
    except StoreMissing as exc:
        print(f"dspy-rl rl recent: {exc}", file=sys.stderr)
        return 2
    try:
        actions = recent_actions(conn, cfg.limit)
    except Exception as exc:
        print(
            f"dspy-rl rl recent: cannot read {cfg.store!r} ({exc}); run `dspy-rl rl verify-storage`",
            file=sys.stderr,
        )
        return 2
    finally:
        conn.close()
    if cfg.json:
        print(json.dumps(actions, indent=1))
        return 0
    for a in actions:
        reward = "-" if a["trace_reward"] is None else f"{a['trace_reward']:+.2f}"
        print(
            f"{_ts(a['start_ts'])}  {a['agent_id'][:16]:<16} {a['kind']:<12} {a['name'][:28]:<28} "
            f"trace {a['trace_id'][:24]} reward {reward}  {a['preview']}"
        )
    if not actions:
        print(f"no actions in {cfg.store}")
    return 0


def _verify(cfg: Any) -> int:
    from dspy_rl.inspection.verify import verify_storage

    report = verify_storage(cfg.store, cfg.runs)
    if cfg.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(f"checked {', '.join(report.checks_run)} ({json.dumps(report.stats)})")
        for problem in report.problems:
            print(f"PROBLEM {problem}")
        print("storage ok" if report.ok else f"{len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def main(argv: list[str]) -> int:
    """Entry point of ``dspy-rl rl``."""
    from dspy_rl.inspection.config import InspectConfig

    if not argv or wants_help(argv):
        print(render(__doc__, "rl", InspectConfig, subcommands=SUBCOMMANDS))
        return 0
    sub, rest = argv[0], list(argv[1:])
    if sub not in SUBCOMMANDS:
        print(f"dspy-rl rl: unknown subcommand {sub!r}; choose one of {', '.join(SUBCOMMANDS)}\n\n{__doc__}",
              file=sys.stderr)  # fmt: skip
        return 2
    cfg = to_object(compose("rl", rest, ALIASES), InspectConfig)
    return {"report": _report, "recent": _recent, "verify-storage": _verify}[sub](cfg)
