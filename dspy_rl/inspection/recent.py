"""The latest agent actions in the trace store, newest first (``dspy-rl rl recent --limit 20``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

#: Span kinds that are actions of an agent (everything but reward records).
ACTION_KINDS = ("prompt", "tool", "content", "reasoning", "coordination")
PREVIEW_CHARS = 120


def _preview(kind: str, attributes: dict[str, Any]) -> str:
    """A short text of what the action did (command, response, answer...)."""
    for key in ("command", "tool", "response", "output", "text", "answer", "content", "message", "prompt"):
        value = attributes.get(key)
        if isinstance(value, str) and value:
            text = " ".join(value.split())
            return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")
    text = json.dumps(attributes, sort_keys=True)
    return text[:PREVIEW_CHARS] + ("…" if len(text) > PREVIEW_CHARS else "")


def recent_actions(conn: sqlite3.Connection, limit: int = 20) -> list[dict[str, Any]]:
    """The ``limit`` newest action spans with their trace's reward and status."""
    marks = ", ".join("?" * len(ACTION_KINDS))
    rows = conn.execute(
        "SELECT s.span_id, s.trace_id, s.agent_id, s.kind, s.name, s.start_ts, s.end_ts, s.attributes, "
        "t.total_reward, t.status FROM spans s LEFT JOIN traces t USING (trace_id) "
        f"WHERE s.kind IN ({marks}) ORDER BY s.start_ts DESC, s.span_id DESC LIMIT ?",
        (*ACTION_KINDS, int(limit)),
    ).fetchall()
    out = []
    for span_id, trace_id, agent_id, kind, name, start, end, attributes, reward, status in rows:
        try:
            attrs = json.loads(attributes)
        except ValueError:
            attrs = {"unparsable_attributes": attributes[:PREVIEW_CHARS]}
        if not isinstance(attrs, dict):
            attrs = {"value": attrs}
        out.append(
            {
                "span_id": span_id,
                "trace_id": trace_id,
                "agent_id": agent_id,
                "kind": kind,
                "name": name,
                "start_ts": start,
                "duration_s": None if end is None else end - start,
                "trace_reward": reward,
                "trace_status": status,
                "preview": _preview(kind, attrs),
            }
        )
    return out
