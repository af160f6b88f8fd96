"""Auto mode: mine + GRPO train cycles on a cadence, one policy per level, restart-safe, controlled over HTTP.

``dspy-rl stream auto --period-sec 600 --hours 48 --min-groups 32 [--hierarchical]``. Every ``period_sec``:

1. **guard**: free disk at the state dir, RAM and VRAM against ``guard.*``; a refusal skips the cycle (recorded
   with the figures and the setting to change);
2. **intent**: the cycle's upper cursor (the newest span's rowid, :meth:`TraceStore.span_cursor`) and look-back
   start are written to ``state.json`` *before* any work, so a restarted process redoes the same cycle;
3. per level (``global, signature, patch`` with ``hierarchical``, else ``mine.level``): the traces that ended
   (their ``trace.end`` span was stored) after the level's own cursor and up to the cycle's are mined into groups
   (``groups/cycle_<n>.<level>.jsonl``); with at least ``min_groups`` groups the level's policy
   (``ckpts_<level>/``, :class:`~dspy_rl.stream.level_trainer.LevelTrainer`) trains on them and checkpoints,
   recording the cycle and cursor *in the checkpoint*; with fewer, its cursor stays, so they wait for the next
   cycle (never lost);
4. **commit**: ``state.json`` moves to the next cycle (atomic write) and the cycle's record is appended to
   ``cycles.jsonl``; old group files are removed (``keep_group_files``).

SIGKILL at any point: the restarted process finds the intent of step 2 and repeats the cycle with the same
bounds; a level whose checkpoint already records that cycle is not trained again, the others train on exactly
the groups they would have. So no group is trained twice and none is skipped.

``state.json``: ``{"version", "cycle", "seq", "pending": null | {"cycle", "hi", "since", "started_at"}, "paused",
"last_cycle": <record> | null, "updated_at"}``. A ``cycles.jsonl`` record: ``{"seq", "cycle", "status":
"trained" | "waiting" | "skipped_guard" | "failed", "reason", "started_at", "ended_at", "cursor": [null, hi],
"resumed": bool, "guard": GuardReport.to_json(), "levels": {level: {"status": "trained" | "waiting" |
"done_before_restart", "from_cursor", "traces", "groups", "dropped_small", "bad_lines", "metrics"}}}``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspy_rl.stream.level_trainer import LevelTrainer, LevelTrainOptions
from dspy_rl.system.guard import GuardConfig, check_capacity
from dspy_rl.traces.mining import LEVELS, build_groups, group_lines, write_jsonl_atomic
from dspy_rl.traces.store import TraceStore
from dspy_rl.utils.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

STATE_VERSION = 1
FAILPOINT_ENV = "DSPY_RL_AUTO_FAILPOINT"


def _failpoint(name: str) -> None:
    """SIGKILL this process at the named point when ``$DSPY_RL_AUTO_FAILPOINT`` names it (crash tests)."""
    if os.environ.get(FAILPOINT_ENV) == name:
        logger.warning("failpoint %s: SIGKILL", name)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class AutoOptions:
    """The settings one auto-mode process runs with (from ``StreamConfig``; see ``AutoSettings`` docs)."""

    store: str
    state_dir: str
    levels: list[str]
    period_sec: float = 600.0
    hours: float | None = 48.0
    min_groups: int = 32
    min_candidates: int = 2
    max_candidates: int = 16
    max_cycles: int | None = None
    keep_group_files: int = 3
    paused: bool = False
    apply_policy: bool = False
    workspace: str | None = None
    guard: GuardConfig = field(default_factory=GuardConfig)
    train: LevelTrainOptions = field(default_factory=LevelTrainOptions)
    synchronous: str = "NORMAL"


class AutoRunner:
    """The auto-mode loop (see module docstring); thread-safe ``status``/``pause``/``resume``/``stop``."""

    def __init__(self, options: AutoOptions) -> None:
        bad = [lv for lv in options.levels if lv not in LEVELS]
        if bad or not options.levels:
            raise ValueError(f"levels={options.levels!r}; expected a non-empty subset of {list(LEVELS)}")
        self.opt = options
        self.dir = Path(options.state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.dir / "state.json"
        self.cycles_path = self.dir / "cycles.jsonl"
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = False
        self._in_cycle = False
        self._next_at: float | None = None
        self.started_at = time.time()
        self.state = self._load_state()
        if options.paused:
            self.state["paused"] = True
        self.control_url: str | None = None
        self._trainers: dict[str, LevelTrainer] = {}

    # -- state ------------------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Any]:
        if self.state_path.is_file():
            try:
                state = json.loads(self.state_path.read_text())
            except ValueError as exc:
                raise ValueError(
                    f"{self.state_path} is not valid JSON ({exc}); move it away to start auto mode afresh"
                ) from None
            if state.get("version") != STATE_VERSION:
                raise ValueError(
                    f"{self.state_path}: state version {state.get('version')!r}, expected {STATE_VERSION}"
                )
            self._reconcile_log(state)
            if state.get("pending"):
                logger.info("auto: resuming cycle %d interrupted by a restart", state["pending"]["cycle"])
            return state
        return {"version": STATE_VERSION, "cycle": 0, "seq": 0, "pending": None, "paused": False,
                "last_cycle": None, "updated_at": time.time()}  # fmt: skip

    def _reconcile_log(self, state: dict[str, Any]) -> None:
        """Append the committed last record if a crash came between the state commit and the log append."""
        last = state.get("last_cycle")
        if not last:
            return
        seqs = set()
        if self.cycles_path.is_file():
            for line in self.cycles_path.read_text().splitlines():
                try:
                    seqs.add(json.loads(line).get("seq"))
                except ValueError:
                    continue
        if last.get("seq") not in seqs:
            self._append_record(last)

    def _save_state(self) -> None:
        with self._lock:
            self.state["updated_at"] = time.time()
            atomic_write_bytes(self.state_path, json.dumps(self.state, default=str).encode())

    def _append_record(self, record: dict[str, Any]) -> None:
        with self.cycles_path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _commit(self, record: dict[str, Any], next_cycle: bool) -> None:
        with self._lock:
            record["seq"] = self.state["seq"]
            self.state["seq"] += 1
            if next_cycle:
                self.state["cycle"] += 1
                self.state["pending"] = None
            self.state["last_cycle"] = record
            self._save_state()
        _failpoint("committed")
        self._append_record(record)

    # -- control ----------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """``{"running", "paused", "in_cycle", "stopping", "pid", "state_dir", "store", "levels", "cycle",
        "period_sec", "next_cycle_at", "started_at", "last_cycle", "pending", "control_url"}``."""
        with self._lock:
            return {
                "running": not self.state["paused"] and not self._stop,
                "paused": bool(self.state["paused"]),
                "in_cycle": self._in_cycle,
                "stopping": self._stop,
                "pid": os.getpid(),
                "state_dir": str(self.dir),
                "store": self.opt.store,
                "levels": list(self.opt.levels),
                "cycle": self.state["cycle"],
                "period_sec": self.opt.period_sec,
                "next_cycle_at": None if self.state["paused"] else self._next_at,
                "started_at": self.started_at,
                "last_cycle": self.state.get("last_cycle"),
                "pending": self.state.get("pending"),
                "control_url": self.control_url,
            }

    def pause(self) -> dict[str, Any]:
        """Stop starting cycles (the current one finishes); the process keeps serving ``/start``."""
        with self._lock:
            self.state["paused"] = True
            self._save_state()
        self._wake.set()
        return self.status()

    def resume(self) -> dict[str, Any]:
        """Start cycling again; the next cycle starts now."""
        with self._lock:
            self.state["paused"] = False
            self._next_at = time.time()
            self._save_state()
        self._wake.set()
        return self.status()

    def stop(self) -> None:
        """End :meth:`run` after the current cycle (SIGTERM)."""
        self._stop = True
        self._wake.set()

    # -- one cycle --------------------------------------------------------------------------------------
    def run_cycle(self, store: TraceStore) -> dict[str, Any]:
        """Run (or finish, after a restart) one cycle; returns its record."""
        opt = self.opt
        n = int(self.state["cycle"])
        record: dict[str, Any] = {"cycle": n, "started_at": time.time(), "levels": {}, "reason": None}
        report = check_capacity(opt.guard.min_free_gb, opt.guard.min_ram_gb, opt.guard.min_vram_mb, self.dir)
        record["guard"] = report.to_json()
        if opt.guard.enabled and not report.ok:
            record.update(status="skipped_guard", reason=report.refusal(f"cycle {n}"), ended_at=time.time())
            logger.warning("auto: %s", record["reason"])
            self._commit(record, next_cycle=False)
            return record
        pending = self.state.get("pending")
        resumed = bool(pending and pending.get("cycle") == n)
        if not resumed:
            since = None if opt.hours is None else time.time() - opt.hours * 3600.0
            pending = {"cycle": n, "hi": store.span_cursor(), "since": since, "started_at": time.time()}
            with self._lock:
                self.state["pending"] = pending
                self._save_state()
        assert pending is not None
        record.update(resumed=resumed, cursor=[None, pending["hi"]])
        _failpoint("intent")
        trained = waiting = 0
        for level in opt.levels:
            info = self._run_level(store, level, n, pending)
            record["levels"][level] = info
            trained += info["status"] in ("trained", "done_before_restart")
            waiting += info["status"] == "waiting"
            _failpoint(f"level:{level}")
        record["status"] = "trained" if trained else "waiting"
        if waiting and not trained:
            record["reason"] = (
                f"fewer than min_groups={opt.min_groups} groups at every level; they wait for the next cycle"
            )
        if opt.apply_policy and trained:
            record["apply_policy"] = self._apply_policy()
        record["ended_at"] = time.time()
        self._commit(record, next_cycle=True)
        self._cleanup_groups(n)
        return record

    def _run_level(self, store: TraceStore, level: str, n: int, pending: dict[str, Any]) -> dict[str, Any]:
        from dspy_rl.grpo.dataset import load_groups

        opt = self.opt
        trainer = self._trainers.get(level)
        if trainer is None:
            trainer = self._trainers[level] = LevelTrainer(self.dir / f"ckpts_{level}", level, opt.train)
        done = trainer.progress
        if done["cycle"] >= n:
            return {
                "status": "done_before_restart",
                "from_cursor": done["cursor"],
                "groups_trained": done["groups_trained"],
            }
        lo, hi = int(done["cursor"]), int(pending["hi"])
        traces = store.ended_traces(lo, hi, since=pending.get("since"))
        spans = store.spans_of_traces(traces, kinds=("prompt", "reward", "content"))
        groups_by_level, counts = build_groups(spans)
        lines, few, equal = group_lines(groups_by_level[level], opt.min_candidates, opt.max_candidates, False)
        path = self.dir / "groups" / f"cycle_{n:06d}.{level}.jsonl"
        write_jsonl_atomic(path, lines)
        info: dict[str, Any] = {"from_cursor": lo, "traces": len(traces), "groups": len(lines),
                                "dropped_small": few, "unrewarded_actions": counts["unrewarded_actions"],
                                "groups_file": str(path)}  # fmt: skip
        if len(lines) < max(1, opt.min_groups):
            info["status"] = "waiting"
            return info
        groups, report = load_groups(path, on_bad_line="skip")
        info["bad_lines"] = [f"{path}:{b.line}: {b.reason}" for b in report.bad]
        for bad in info["bad_lines"]:
            logger.warning("auto: mined line skipped: %s", bad)
        metrics = trainer.train(groups, cycle=n, cursor=hi)
        info.update(status="trained", metrics=metrics, groups_trained=trainer.progress["groups_trained"])
        logger.info("auto cycle %d, level %s: %d traces, %d groups, reward_mean %s", n, level, len(traces),
                    len(lines), metrics.get("reward_mean"))  # fmt: skip
        return info

    def _apply_policy(self) -> dict[str, Any]:
        from dspy_rl.stream.apply_policy import apply_policy

        return apply_policy(self.opt.store, self.opt.hours, self.opt.workspace)

    def _cleanup_groups(self, n: int) -> None:
        keep_from = n - self.opt.keep_group_files + 1
        for path in (self.dir / "groups").glob("cycle_*.jsonl"):
            try:
                cycle = int(path.name.split(".")[0].split("_")[1])
            except (IndexError, ValueError):
                continue
            if cycle < keep_from:
                path.unlink(missing_ok=True)

    # -- the loop ---------------------------------------------------------------------------------------
    def run(self) -> int:
        """Cycle until stopped or ``max_cycles``; returns the number of cycles this process committed."""
        opt = self.opt
        store = TraceStore(opt.store, synchronous=opt.synchronous)
        done = 0
        try:
            self._next_at = time.time()
            while not self._stop:
                if opt.max_cycles is not None and self.state["cycle"] >= opt.max_cycles:
                    logger.info("auto: reached max_cycles=%d", opt.max_cycles)
                    break
                now = time.time()
                if self.state["paused"] or (self._next_at is not None and now < self._next_at):
                    wait = 1.0 if self.state["paused"] else max(0.0, (self._next_at or now) - now)
                    self._wake.wait(timeout=min(wait, 1.0))
                    self._wake.clear()
                    continue
                self._in_cycle = True
                try:
                    self.run_cycle(store)
                except Exception as exc:  # a failed cycle is recorded; the next one retries it
                    logger.exception("auto: cycle %d failed", self.state["cycle"])
                    self._commit({"cycle": self.state["cycle"], "status": "failed", "levels": {},
                                  "reason": f"{type(exc).__name__}: {exc}", "ended_at": time.time()},
                                 next_cycle=False)  # fmt: skip
                finally:
                    self._in_cycle = False
                done += 1
                self._next_at = time.time() + opt.period_sec
        finally:
            store.close()
        return done
