"""Export traces from the store to JSON files: ``traces/YYYYMMDD/<agent_id>/<trace_id>.json`` plus an index.

The date is the UTC day the trace started. ``metadata/trace_index.json`` lists every exported trace with its
relative path, agent, times, status, reward and span count, so tools can scan the export without opening every
file. Files are written atomically (temp file, then rename), so a reader never sees half a trace.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dspy_rl.traces.store import TraceStore
from dspy_rl.utils.atomic import atomic_write_bytes

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(value: str) -> str:
    """A file-system-safe form of an id: anything but ``[A-Za-z0-9._-]`` becomes ``_``; never empty or dots."""
    name = _UNSAFE.sub("_", value)
    return name if name.strip(".") else "_" + name


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode(), fsync=False)


def export_traces(
    store: TraceStore,
    out_dir: str | Path,
    *,
    agent_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    min_reward: float | None = None,
    max_reward: float | None = None,
) -> dict[str, Any]:
    """Write the selected traces under ``out_dir``; returns the index that was written."""
    out = Path(out_dir)
    entries = []
    for record in store.query_traces(
        agent_id=agent_id, since=since, until=until, min_reward=min_reward, max_reward=max_reward
    ):
        trace = store.get_trace(record.trace_id)
        if trace is None:  # deleted between the two reads
            continue
        day = datetime.fromtimestamp(trace.started_at, tz=timezone.utc).strftime("%Y%m%d")
        rel = Path("traces") / day / safe_name(trace.agent_id) / f"{safe_name(trace.trace_id)}.json"
        _write_json(out / rel, trace.to_dict())
        entries.append(
            {
                "trace_id": trace.trace_id,
                "agent_id": trace.agent_id,
                "path": rel.as_posix(),
                "started_at": trace.started_at,
                "ended_at": trace.ended_at,
                "status": trace.status,
                "total_reward": trace.total_reward,
                "num_spans": len(trace.spans),
            }
        )
    index = {
        "exported_at": time.time(),
        "store": str(store.path),
        "schema_version": store.schema_version(),
        "filters": {
            "agent_id": agent_id,
            "since": since,
            "until": until,
            "min_reward": min_reward,
            "max_reward": max_reward,
        },
        "num_traces": len(entries),
        "traces": entries,
    }
    _write_json(out / "metadata" / "trace_index.json", index)
    return index
