"""Performance across runs: a summary (by status, algorithm and env) and trends (per run, in start order)."""

from __future__ import annotations

from statistics import mean
from typing import Any


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, totals and means over run summaries (:meth:`RunIndex.summary` rows)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault(f"{r['algorithm']} / {r['env']}", []).append(r)

    def agg(rows: list[dict[str, Any]]) -> dict[str, Any]:
        rates = [r["env_steps_per_s"] for r in rows if _num(r["env_steps_per_s"])]
        succ = [r["success_rate"] for r in rows if _num(r["success_rate"])]
        steps = [r["steps"] for r in rows if _num(r["steps"]) and r["step_key"] == "env_steps"]
        return {
            "runs": len(rows),
            "live": sum(r["status"] == "live" for r in rows),
            "finished": sum(r["status"] == "finished" for r in rows),
            "failed": sum(r["status"] == "failed" for r in rows),
            "env_steps": sum(steps),
            "mean_env_steps_per_s": mean(rates) if rates else None,
            "best_success_rate": max(succ) if succ else None,
            "mean_success_rate": mean(succ) if succ else None,
        }

    return {
        "overall": agg(runs),
        "by_algorithm_env": [{"group": g, **agg(rows)} for g, rows in sorted(groups.items())],
    }


def trends(runs: list[dict[str, Any]], window: int = 5) -> dict[str, Any]:
    """Each run's final success and throughput in start order, with a moving average over ``window`` runs."""
    rows = sorted(runs, key=lambda r: r["started"] or 0)
    points = []
    for i, r in enumerate(rows):
        lo = rows[max(0, i - window + 1) : i + 1]
        s = [x["success_rate"] for x in lo if _num(x["success_rate"])]
        t = [x["env_steps_per_s"] for x in lo if _num(x["env_steps_per_s"])]
        points.append(
            {
                "id": r["id"],
                "started": r["started"],
                "status": r["status"],
                "success_rate": r["success_rate"],
                "env_steps_per_s": r["env_steps_per_s"],
                "success_rate_avg": mean(s) if s else None,
                "env_steps_per_s_avg": mean(t) if t else None,
            }
        )
    return {"window": window, "points": points}
