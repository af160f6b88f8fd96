"""Sweeps under the runs directory (``dspy-rl sweep`` output): trials, history, Pareto front, importance.

A sweep is a directory holding ``sweep_config.yaml``; its trials are Tune's ``tune/trial_<id>/`` directories
(``params.json`` at the trial's start, ``result.json`` one JSON line per report, ``error.txt`` when it failed), so
a running sweep shows its trials as they report; ``results.json`` appears when the sweep ends.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dspy_rl.dashboard.files import NotFound, clean_number, inside, tail_rows

#: libyaml's C loader where PyYAML was built with it (tens of times faster: thousands of configs per scan)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def find_sweeps(root: Path) -> list[str]:
    """Ids (paths relative to ``root``) of every directory holding a sweep_config.yaml."""
    found: list[str] = []
    if not root.is_dir():
        return found
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        if "sweep_config.yaml" in filenames:
            found.append(Path(dirpath).relative_to(root).as_posix())
            dirnames[:] = []
            continue
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and d not in ("checkpoints", "tb", "tune")
        ]
    return sorted(found)


def sweep_dir(root: Path, sweep_id: str) -> Path:
    """The directory of sweep ``sweep_id``; :class:`NotFound` naming the id if there is none."""
    try:
        path = inside(root, sweep_id)
    except NotFound:
        raise NotFound(f"no sweep {sweep_id!r} under {root}") from None
    if not (path / "sweep_config.yaml").is_file():
        raise NotFound(f"no sweep {sweep_id!r} under {root}")
    return path


def _trials(path: Path, metric: str, cost: str) -> list[dict[str, Any]]:
    tune_dir = path / "tune"
    trials = []
    if not tune_dir.is_dir():
        return trials
    for d in tune_dir.iterdir():
        if not d.is_dir() or not d.name.startswith("trial_"):
            continue
        params = _json(d / "params.json")
        rows = tail_rows(d / "result.json")
        last = rows[-1] if rows else {}
        score, cst = last.get(metric), last.get(cost)
        errored = (d / "error.txt").exists() or (d / "error.pkl").exists()
        if errored:
            status = "error"
        elif _finite(score):
            status = "ok"
        else:
            status = "pending"  # started, no report yet (running, or killed before its first report)
        started = (d / "params.json").stat().st_mtime if (d / "params.json").exists() else d.stat().st_mtime
        trials.append(
            {
                "trial_id": d.name.removeprefix("trial_"),
                "config": params if isinstance(params, dict) else {},
                "score": float(score) if _finite(score) and not errored else None,
                "cost": float(cst) if _finite(cst) else None,
                "status": status,
                "reports": len(rows),
                "started": started,
                "train_run": f"tune/{d.name}/train" if (d / "train" / "metrics.jsonl").exists() else None,
            }
        )
    trials.sort(key=lambda t: (t["started"], t["trial_id"]))
    for i, t in enumerate(trials):
        t["index"] = i
    return trials


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # average ties
    for v in np.unique(x):
        m = x == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return ranks


def importance(trials: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """How strongly each parameter goes with the score over the finished trials.

    Numeric parameters: |Spearman rank correlation| with the score (invariant to log/linear spacing);
    categorical ones: the correlation ratio (sqrt of the share of score variance explained by the category).
    ``share`` normalizes them to sum to 1. Needs three scored trials; None otherwise.
    """
    ok = [t for t in trials if t["score"] is not None]
    out = []
    if len(ok) < 3:
        return [{"name": n, "value": None, "share": None, "kind": None} for n in names]
    y = np.array([t["score"] for t in ok], dtype=float)
    for n in names:
        vals = [t["config"].get(n) for t in ok]
        numeric = all(_finite(v) for v in vals)
        if numeric:
            x = np.array(vals, dtype=float)
            rx, ry = _ranks(x), _ranks(y)
            if rx.std() == 0 or ry.std() == 0:
                value = 0.0
            else:
                value = abs(float(np.corrcoef(rx, ry)[0, 1]))
            kind = "spearman"
        else:
            groups: dict[str, list[float]] = {}
            for v, s in zip(vals, y, strict=True):
                groups.setdefault(str(v), []).append(float(s))
            total = float(((y - y.mean()) ** 2).sum())
            between = sum(len(g) * (np.mean(g) - y.mean()) ** 2 for g in groups.values())
            value = math.sqrt(between / total) if total > 0 else 0.0
            kind = "correlation ratio"
        out.append({"name": n, "value": value, "kind": kind})
    total = sum(o["value"] for o in out)
    for o in out:
        o["share"] = o["value"] / total if total > 0 else 0.0
    return out


def sweep_summary(root: Path, sweep_id: str, live_window_s: float = 120.0) -> dict[str, Any]:
    """A sweep's list row: name, searcher, metric, trial counts, best score, status."""
    path = sweep_dir(root, sweep_id)
    cfg = _yaml(path / "sweep_config.yaml")
    sweep = cfg.get("sweep") if isinstance(cfg.get("sweep"), dict) else {}
    metric, cost, mode = sweep.get("metric", "score"), sweep.get("cost", "wall_s"), sweep.get("mode", "max")
    trials = _trials(path, metric, cost)
    scored = [t for t in trials if t["score"] is not None]
    sign = 1.0 if mode == "max" else -1.0
    best = max(scored, key=lambda t: sign * t["score"]) if scored else None
    finished = (path / "results.json").exists()
    newest = max([path.stat().st_mtime] + [t["started"] for t in trials])
    for t in trials:
        rj = path / "tune" / f"trial_{t['trial_id']}" / "result.json"
        if rj.exists():
            newest = max(newest, rj.stat().st_mtime)
    if finished:
        status = "finished"
    elif time.time() - newest < live_window_s:
        status = "live"
    else:
        status = "failed"
    return {
        "id": sweep_id,
        "name": sweep.get("name", Path(sweep_id).name),
        "objective": sweep.get("objective"),
        "searcher": cfg.get("searcher"),
        "metric": metric,
        "cost": cost,
        "mode": mode,
        "num_samples": cfg.get("num_samples"),
        "trials": len(trials),
        "errors": sum(t["status"] == "error" for t in trials),
        "best_score": best["score"] if best else None,
        "best_cost": best["cost"] if best else None,
        "best_config": best["config"] if best else None,
        "status": status,
        "updated": newest,
        "_trials": trials,
        "_config": cfg,
    }


def sweep_detail(root: Path, sweep_id: str, live_window_s: float = 120.0) -> dict[str, Any]:
    """Trials table, optimization history (score and best so far per trial), Pareto front, importance."""
    s = sweep_summary(root, sweep_id, live_window_s)
    trials, cfg = s.pop("_trials"), s.pop("_config")
    sign = 1.0 if s["mode"] == "max" else -1.0
    history, best = [], None
    for t in trials:
        if t["score"] is not None and (best is None or sign * t["score"] > sign * best):
            best = t["score"]
        history.append({"index": t["index"], "trial_id": t["trial_id"], "score": t["score"], "best": best})
    both = [t for t in trials if t["score"] is not None and t["cost"] is not None]
    front: list[str] = []
    if both:
        from dspy_rl.sweeps.pareto import (
            pareto_front,
        )  # dspy_rl.sweeps imports Ray Tune (seconds): load on use

        idx = pareto_front(np.array([sign * t["score"] for t in both]), np.array([t["cost"] for t in both]))
        front = [both[i]["trial_id"] for i in idx]
    for t in trials:
        t["pareto"] = t["trial_id"] in front
    params = cfg.get("sweep", {}).get("parameters") if isinstance(cfg.get("sweep"), dict) else None
    names = list(params) if params else sorted({k for t in trials for k in t["config"]})
    s.update(
        {
            "config_text": (sweep_dir(root, sweep_id) / "sweep_config.yaml").read_text(),
            "parameters": names,
            "trials_table": [{**t, "score": clean_number(t["score"])} for t in trials],
            "history": history,
            "pareto": front,
            "importance": importance(trials, names),
            "images": [f"{sweep_id}/pareto.png"]
            if (sweep_dir(root, sweep_id) / "pareto.png").exists()
            else [],
        }
    )
    return s


def list_sweeps(root: Path, live_window_s: float = 120.0) -> list[dict[str, Any]]:
    """Every sweep's summary, most recently updated first."""
    out = []
    for sid in find_sweeps(root):
        try:
            s = sweep_summary(root, sid, live_window_s)
        except NotFound:
            continue
        s.pop("_trials")
        s.pop("_config")
        out.append(s)
    out.sort(key=lambda s: -s["updated"])
    return out
