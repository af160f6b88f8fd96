"""``<run_dir>/status.json``: what a run is doing, for ``dspy-rl rl report`` and the dashboard.

A run writes ``running`` (with its pid) when it starts and its final status when it ends; a reader that finds
``running`` with a pid that no longer exists reports the run as ``died``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from dspy_rl.utils.atomic import atomic_write_bytes

STATUS_FILE = "status.json"


def write_status(run_dir: str | os.PathLike[str], status: str, **extra: Any) -> None:
    """Atomically record ``status`` (plus pid, host, time and ``extra``) in ``<run_dir>/status.json``."""
    path = Path(run_dir) / STATUS_FILE
    previous = read_status(run_dir) or {}
    row = {
        "status": status,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started_at": previous.get("started_at", time.time()) if status != "running" else time.time(),
        "updated_at": time.time(),
        **extra,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(row, default=str).encode())


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recorded status, with ``running`` turned into ``died`` when its process is gone (same host)."""
    path = Path(run_dir) / STATUS_FILE
    try:
        row = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if (
        row.get("status") == "running"
        and row.get("host") == socket.gethostname()
        and not _alive(row.get("pid"))
    ):
        row["status"] = "died"
    return row


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
