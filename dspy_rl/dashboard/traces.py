"""The trace store page: span counts, events/s over time, DLQ counts and the most recent actions.

The store (:mod:`dspy_rl.traces.store`) is opened read-only (``mode=ro``; WAL lets it be read while an ingester
writes); the dashboard never migrates or writes it. Events/s is by event time (span ``start_ts``). DLQ counts and the
ingester's own events/s come from its metrics snapshots (``ingest.metrics_path``, one JSON object per line).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from dspy_rl.dashboard.files import read_jsonl


class StoreUnavailable(RuntimeError):
    """No trace store configured, or the file is missing or unreadable (the message says which)."""


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StoreUnavailable(f"trace store {path} does not exist (set store=<path to traces.db>)")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        conn.execute("SELECT 1 FROM spans LIMIT 1")
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"trace store {path} cannot be read: {exc}") from exc
    return conn


def store_summary(
    path: Path, window_s: float = 3600.0, bucket_s: float = 60.0, recent: int = 25
) -> dict[str, Any]:
    """Counts by kind, traces by status, events per second per ``bucket_s`` over the last ``window_s`` of event
    time (ending at the newest span), and the ``recent`` newest spans."""
    conn = _connect(path)
    try:
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM spans GROUP BY kind").fetchall())
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM traces GROUP BY status").fetchall())
        newest = conn.execute("SELECT MAX(start_ts) FROM spans").fetchone()[0]
        series: list[dict[str, float]] = []
        if newest is not None:
            since = newest - window_s
            counts = dict(
                conn.execute(
                    "SELECT CAST((start_ts - ?) / ? AS INTEGER) AS b, COUNT(*) FROM spans WHERE start_ts > ? GROUP BY b",
                    (since, bucket_s, since),
                ).fetchall()
            )
            n = int(window_s // bucket_s)
            series = [
                {"t": since + (b + 1) * bucket_s, "events_per_s": counts.get(b, 0) / bucket_s}
                for b in range(n)
                if b >= min(counts, default=n)
            ]
        rows = conn.execute(
            "SELECT span_id, trace_id, agent_id, kind, name, start_ts, reward, attributes FROM spans "
            "ORDER BY start_ts DESC, span_id DESC LIMIT ?",
            (recent,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"trace store {path} cannot be read: {exc}") from exc
    finally:
        conn.close()
    actions = []
    for span_id, trace_id, agent_id, kind, name, ts, reward, attributes in rows:
        try:
            attrs = json.loads(attributes)
        except ValueError:
            attrs = {}
        preview = json.dumps(attrs)[:160] if attrs else ""
        actions.append(
            {
                "span_id": span_id,
                "trace_id": trace_id,
                "agent_id": agent_id,
                "kind": kind,
                "name": name,
                "start_ts": ts,
                "reward": reward,
                "attributes": preview,
            }
        )
    return {
        "path": str(path),
        "spans": sum(kinds.values()),
        "spans_by_kind": kinds,
        "traces": sum(statuses.values()),
        "traces_by_status": statuses,
        "newest_ts": newest,
        "bucket_s": bucket_s,
        "events_per_s": series,
        "recent": actions,
    }


def ingest_summary(path: Path) -> dict[str, Any]:
    """The ingester's newest metrics snapshot (events/s, DLQ count and reasons, lag) and the events/s history."""
    rows, corrupt, _ = read_jsonl(path)
    if not rows:
        raise StoreUnavailable(f"ingest metrics {path} has no snapshot yet")
    last = rows[-1]
    return {
        "path": str(path),
        "snapshots": len(rows),
        "corrupt_lines": corrupt,
        "events": last.get("events"),
        "stored": last.get("stored"),
        "duplicates": last.get("duplicates"),
        "dlq": last.get("dlq"),
        "dlq_reasons": last.get("dlq_reasons") or {},
        "lag": last.get("lag"),
        "events_per_s": last.get("events_per_s"),
        "history": [
            {"i": i, "events_per_s": r.get("events_per_s"), "dlq": r.get("dlq")} for i, r in enumerate(rows)
        ],
        "age_s": time.time() - path.stat().st_mtime,
    }


def dlq_summary(path: Path, recent: int = 10) -> dict[str, Any]:
    """Dead letters in a file-bus DLQ topic file (``<bus dir>/agent.dlq.jsonl``): count, count by reason class (the
    record's ``kind``, else the reason's text before the first ':'), and the newest ``recent`` reasons."""
    rows, corrupt, _ = read_jsonl(path)
    reasons: dict[str, int] = {}
    for r in rows:
        # the reason's class (``kind``: invalid_json, bad_kind, ...) when the ingester records it, else its first words
        label = str(r.get("kind") or str(r.get("reason", "?")).split(":", 1)[0][:80])
        reasons[label] = reasons.get(label, 0) + 1
    return {
        "path": str(path),
        "dlq": len(rows),
        "corrupt_lines": corrupt,
        "dlq_reasons": reasons,
        "recent": [
            {
                "reason": r.get("reason"),
                "where": r.get("file") or r.get("topic"),
                "line": r.get("line", r.get("offset")),
                "failed_at": r.get("failed_at"),
            }
            for r in rows[-recent:]
        ][::-1],
    }
