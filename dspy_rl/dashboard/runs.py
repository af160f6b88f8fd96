"""Training runs under the runs directory: discovery, summaries (status, throughput, ETA) and metrics.

A run is a directory holding ``metrics.jsonl`` (written by ``dspy-rl train``'s RunLogger or ``dspy-rl grpo
train``'s MetricsLogger) and usually ``config.yaml`` and ``checkpoints/``. Its id is its path relative to the runs
directory (``train/2026-12-04_16-56-02``).

Status: ``finished`` once the last row reached the budget (``total_env_steps`` / ``steps``), the target success
rate, or a final evaluation / ``summary.json`` was written; ``live`` while metrics.jsonl changed within
``live_window_s``; otherwise ``failed`` (it stopped before its budget: killed, crashed or interrupted). The
``status.json`` the trainers write (:mod:`dspy_rl.utils.run_status`) takes precedence: ``running`` with a live pid
is live, ``completed`` / ``reached target_success`` finished, anything else (``died``, ``error``, ``interrupted by
SIGTERM``) failed, with the recorded status as the detail.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dspy_rl.dashboard.files import NotFound, clean_number, inside, read_jsonl, tail_rows
from dspy_rl.utils.run_status import read_status

#: libyaml's C loader where PyYAML was built with it (tens of times faster: thousands of configs per scan)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

logger = logging.getLogger(__name__)

STATUSES = ("live", "finished", "failed")
#: Final statuses (status.json) of a run that ended as planned.
FINISHED = ("completed", "reached target_success", "finished")
#: Directories never searched for runs (inside a run, or not runs at all).
SKIP_DIRS = {"checkpoints", "tb", "wandb", "model", "final", "__pycache__", "node_modules"}
#: Keys a run page charts as losses (per policy prefixes such as ``A/`` are kept).
LOSS_SUFFIXES = ("pg_loss", "v_loss", "loss", "entropy", "approx_kl", "kl", "clipfrac", "grad_norm")


@dataclass
class _Cached:
    stamp: tuple[int, int, int]
    config: dict[str, Any]
    last: dict[str, Any]
    recent: list[dict[str, Any]]
    evaluated: bool
    first_row_time: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_LOADER)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _dig(cfg: dict[str, Any], *keys: str) -> Any:
    node: Any = cfg
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def step_key(row: dict[str, Any]) -> str:
    """The x axis of a metrics row: env steps (env training) or optimizer steps (text GRPO)."""
    return "env_steps" if "env_steps" in row else "step"


def _budget(cfg: dict[str, Any]) -> int | None:
    for keys in (("total_env_steps",), ("steps",)):
        v = _dig(cfg, *keys)
        if isinstance(v, int) and v > 0:
            return v
    return None


def _algorithm(cfg: dict[str, Any], rel: str) -> str:
    name = _dig(cfg, "algo", "name")
    if isinstance(name, str):
        return name
    if "group_size" in cfg and "task" in cfg:
        return "grpo (text)"
    return "grpo" if "grpo" in rel else "?"


def _env(cfg: dict[str, Any]) -> str:
    env = cfg.get("env")
    if isinstance(env, dict):
        suite = env.get("suite", "?")
        return f"{suite}" + (f" ({env['backend']})" if env.get("backend") else "")
    if isinstance(cfg.get("task"), str):
        return f"task {cfg['task']}"
    return "?"


class RunIndex:
    """Finds and summarizes runs under ``root``; rescans at most every ``scan_ttl_s`` seconds, and rereads a run
    only when its files changed (so thousands of runs cost one directory walk per scan)."""

    def __init__(self, root: str | os.PathLike[str], live_window_s: float = 120.0, scan_ttl_s: float = 2.0):
        self.root = Path(root)
        self.live_window_s = live_window_s
        self.scan_ttl_s = scan_ttl_s
        self._lock = threading.Lock()
        self._scan_at = -1e18
        self._ids: list[str] = []
        self._cache: dict[str, _Cached] = {}

    # -- discovery --------------------------------------------------------------------------------------
    def run_ids(self) -> list[str]:
        """Ids of every run directory (relative paths, '/'-separated)."""
        with self._lock:
            if time.monotonic() - self._scan_at >= self.scan_ttl_s:
                self._ids = self._walk()
                self._scan_at = time.monotonic()
            return list(self._ids)

    def _walk(self) -> list[str]:
        found: list[str] = []
        if not self.root.is_dir():
            return found
        root = self.root.resolve()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
            if "metrics.jsonl" in filenames:
                found.append(Path(dirpath).relative_to(root).as_posix())
                dirnames[:] = []  # a run holds no runs
        return found

    def run_dir(self, run_id: str) -> Path:
        """The directory of run ``run_id``; :class:`NotFound` naming the id if there is no such run."""
        try:
            path = inside(self.root, run_id)
        except NotFound:
            raise NotFound(f"no run {run_id!r} under {self.root}") from None
        if not (path / "metrics.jsonl").is_file():
            raise NotFound(f"no run {run_id!r} under {self.root}")
        return path

    # -- summaries --------------------------------------------------------------------------------------
    def _read(self, run_id: str, path: Path) -> _Cached:
        metrics = path / "metrics.jsonl"
        try:
            st = metrics.stat()
        except OSError as exc:
            raise NotFound(f"no run {run_id!r} under {self.root}") from exc
        cfg_path = path / "config.yaml"
        try:
            cfg_mtime = cfg_path.stat().st_mtime_ns
        except OSError:
            cfg_mtime = 0
        stamp = (st.st_mtime_ns if st else 0, st.st_size if st else 0, cfg_mtime)
        cached = self._cache.get(run_id)
        if cached is not None and cached.stamp == stamp:
            return cached
        config = _load_yaml(cfg_path)
        rows = tail_rows(metrics)
        train_rows = [r for r in rows if "success_rate" in r or "reward_mean" in r or "loss" in r]
        evaluated = (
            any(k.startswith("eval_") for r in rows[-3:] for k in r) or (path / "summary.json").exists()
        )
        last = dict(train_rows[-1]) if train_rows else (dict(rows[-1]) if rows else {})
        for r in rows:  # a final evaluation row joins the summary
            for k, v in r.items():
                if k.startswith("eval_"):
                    last[k] = v
        cached = _Cached(stamp, config, last, train_rows[-5:], evaluated)
        self._cache[run_id] = cached
        return cached

    def summary(self, run_id: str, now: float | None = None) -> dict[str, Any]:
        """One run's row of the runs list (status, algorithm, env, progress, env steps/s, success, ETA)."""
        return self._summary(run_id, self.run_dir(run_id), time.time() if now is None else now)

    def _summary(self, run_id: str, path: Path, now: float) -> dict[str, Any]:
        c = self._read(run_id, path)
        updated = c.stamp[0] / 1e9 if c.stamp[0] else None
        started = c.stamp[2] / 1e9 if c.stamp[2] else updated
        last = c.last
        budget = _budget(c.config)
        x = step_key(last) if last else "env_steps"
        steps = last.get(x)
        rates = [
            r.get("env_steps_per_s") for r in c.recent if isinstance(r.get("env_steps_per_s"), int | float)
        ]
        rate = sum(rates) / len(rates) if rates else None
        success = last.get("success_rate", last.get("reward_mean"))
        target = _dig(c.config, "target_success")
        status, detail = self._status(path, c, budget, steps, success, target, updated, now)
        eta = None
        if status == "live" and rate and budget and isinstance(steps, int | float):
            eta = max(0.0, (budget - steps) / rate)
        parts = Path(run_id).parts
        sweep = "/".join(parts[: parts.index("tune")]) if "tune" in parts else None
        return {
            "id": run_id,
            "status": status,
            "status_detail": detail,
            "algorithm": self._algorithm(c, path, run_id),
            "env": _env(c.config),
            "step_key": x,
            "steps": steps,
            "budget": budget,
            "progress": (steps / budget) if budget and isinstance(steps, int | float) else None,
            "env_steps_per_s": clean_number(rate),
            "success_rate": clean_number(success),
            "episode_return": clean_number(last.get("episode_return")),
            "eval_success_rate": clean_number(last.get("eval_success_rate")),
            "wall_s": clean_number(last.get("wall_s")),
            "eta_s": eta,
            "started": started,
            "updated": updated,
            "sweep": sweep,
        }

    @staticmethod
    def _algorithm(c: _Cached, path: Path, run_id: str) -> str:
        name = _algorithm(c.config, run_id)
        if name == "?":  # no config.yaml (auto mode's level trainers): the kind its status.json records
            kind = (read_status(path) or {}).get("kind")
            name = f"grpo ({kind})" if kind else name
        return name

    def _status(
        self,
        path: Path,
        c: _Cached,
        budget: int | None,
        steps: Any,
        success: Any,
        target: Any,
        updated: float | None,
        now: float,
    ) -> tuple[str, str]:
        recorded = read_status(path)  # written by the trainers: running (with pid) / their final status
        if recorded and recorded.get("status"):
            st = str(recorded["status"])
            if st == "running":
                if recorded.get("host") == socket.gethostname() or (
                    updated is not None and now - updated < self.live_window_s
                ):
                    return "live", "training"
                return (
                    "failed",
                    f"recorded running on {recorded.get('host')}, no update for {now - (updated or now):.0f} s",
                )
            if st in FINISHED:
                return "finished", st
            return "failed", st  # died, error, interrupted by SIGTERM, ...
        if budget and isinstance(steps, int | float) and steps >= budget:
            return "finished", f"reached its budget of {budget:,}"
        if c.evaluated:
            return "finished", "final evaluation written"
        if isinstance(target, int | float) and isinstance(success, int | float) and success >= target:
            return "finished", f"reached target_success {target:g}"
        if updated is not None and now - updated < self.live_window_s:
            return "live", "training"
        shown = f"{steps:,}" if isinstance(steps, int) else "?"
        of = f" of {budget:,}" if budget else ""
        return (
            "failed",
            f"stopped at {shown}{of} without finishing (no update for {now - (updated or now):.0f} s)",
        )

    def list(
        self, status: str | None = None, query: str | None = None, page: int = 1, page_size: int = 50
    ) -> dict[str, Any]:
        """A page of run summaries, most recently updated first, filtered by status and an id substring."""
        now = time.time()
        rows = []
        counts = dict.fromkeys(STATUSES, 0)
        root = self.root.resolve()
        for run_id in self.run_ids():  # found by the walk: inside root, no need to re-check the path
            try:
                s = self._summary(run_id, root / run_id, now)
            except NotFound:  # deleted since the scan
                continue
            counts[s["status"]] += 1
            if status and s["status"] != status:
                continue
            if query and query.lower() not in run_id.lower():
                continue
            rows.append(s)
        rows.sort(key=lambda r: -(r["updated"] or 0))
        total = len(rows)
        pages = max(1, -(-total // page_size))
        start = (page - 1) * page_size
        return {
            "total": total,
            "page": page,
            "pages": pages,
            "page_size": page_size,
            "counts": counts,
            "sessions": rows[start : start + page_size],
        }

    # -- one run ---------------------------------------------------------------------------------------
    def detail(self, run_id: str) -> dict[str, Any]:
        """Summary, resolved config (text), checkpoints, and the files a page may link to."""
        path = self.run_dir(run_id)
        out = self.summary(run_id)
        cfg_path = path / "config.yaml"
        out["config_text"] = cfg_path.read_text() if cfg_path.exists() else None
        ckpts = []
        ck_dir = path / "checkpoints"
        if ck_dir.is_dir():
            for f in sorted(ck_dir.iterdir()):
                if f.is_file() and f.suffix in (".pt", ".pth", ".ckpt"):
                    st = f.stat()
                    ckpts.append(
                        {
                            "name": f.name,
                            "bytes": st.st_size,
                            "mtime": st.st_mtime,
                            "file": f"{run_id}/checkpoints/{f.name}",
                        }
                    )
        for name in ("checkpoint.pt",):
            f = path / name
            if f.is_file():
                st = f.stat()
                ckpts.append(
                    {"name": name, "bytes": st.st_size, "mtime": st.st_mtime, "file": f"{run_id}/{name}"}
                )
        out["checkpoints"] = ckpts
        out["images"] = [f"{run_id}/{n}" for n in ("learning_curve.png",) if (path / n).is_file()]
        return out

    def metrics(self, run_id: str, after: int = 0) -> dict[str, Any]:
        """Rows of metrics.jsonl from line ``after`` on (``next`` is the line to ask from next time), with
        the derived ``wait_s`` (iteration time not spent sampling or learning) and the corrupt-line count."""
        path = self.run_dir(run_id)
        rows, corrupt_new, read = read_jsonl(path / "metrics.jsonl", after)
        # corrupt lines before `after` were counted by earlier calls; report the whole file's count
        corrupt = corrupt_new if after == 0 else read_jsonl(path / "metrics.jsonl", 0)[1]
        prev: dict[str, Any] | None = None
        for r in rows:
            if "sample_s" in r and "learn_s" in r and "wall_s" in r and "iteration" in r:
                if prev is not None and r["iteration"] > prev["iteration"]:
                    per_iter = (r["wall_s"] - prev["wall_s"]) / (r["iteration"] - prev["iteration"])
                    r["wait_s"] = max(0.0, per_iter - r["sample_s"] - r["learn_s"])
                prev = r
        keys = sorted({k for r in rows for k in r})
        return {
            "id": run_id,
            "rows": rows,
            "keys": keys,
            "after": after,
            "next": after + read,
            "corrupt_lines": corrupt,
            "loss_keys": [k for k in keys if k.rsplit("/", 1)[-1] in LOSS_SUFFIXES],
        }
