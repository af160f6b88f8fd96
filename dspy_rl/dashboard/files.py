"""Safe paths under the dashboard's runs directory, and tolerant JSON-lines reading."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class NotFound(LookupError):
    """An id or path that names nothing under the runs directory (the message names it)."""


def inside(root: Path, rel: str) -> Path:
    """``root / rel`` resolved (symlinks followed), refusing anything that lands outside ``root``.

    Raises :class:`NotFound` naming ``rel`` for absolute paths, ``..`` escapes, NUL bytes and symlinks out of
    ``root``: the dashboard never reads or serves a file outside its runs directory.
    """
    root = root.resolve()
    if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or Path(rel).is_absolute():
        raise NotFound(f"{rel!r} is not a path inside the runs directory")
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise NotFound(f"{rel!r} is not a path inside the runs directory")
    return target


def clean_number(v: Any) -> Any:
    """JSON-safe value: non-finite floats become None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def read_jsonl(path: Path, start_line: int = 0) -> tuple[list[dict[str, Any]], int, int]:
    """Rows of a JSON-lines file from line ``start_line`` on: ``(rows, corrupt, lines_read)``.

    Lines that are not a JSON object (a torn write, a truncated copy, garbage) are skipped and counted; a last
    line without its newline (a row being written) is left for the next read and not counted.
    """
    rows: list[dict[str, Any]] = []
    corrupt = 0
    lines = 0
    try:
        data = path.read_bytes()
    except OSError:
        return rows, 0, 0
    parts = data.split(b"\n")
    complete = parts[:-1]  # the last part has no newline yet (or is empty)
    for raw in complete[start_line:]:
        lines += 1
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            corrupt += 1
            continue
        if not isinstance(row, dict):
            corrupt += 1
            continue
        rows.append({k: clean_number(v) for k, v in row.items()})
    return rows, corrupt, lines


def tail_rows(path: Path, max_bytes: int = 65536) -> list[dict[str, Any]]:
    """The last complete JSON-object lines of a file (reads at most ``max_bytes`` from its end)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    parts = data.split(b"\n")
    if size > max_bytes:
        parts = parts[1:]  # the first part may be a cut line
    rows = []
    for raw in parts[:-1]:
        try:
            row = json.loads(raw)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
