"""CPU, RAM, disk and GPU use of this machine, read from /proc, statvfs and CUDA (no extra dependency).

:func:`system_stats` returns one flat dict (``None`` for what this machine does not have), cheap enough to call
once per training iteration: the CPU figure is the share of busy time since the previous call in this process.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

_GB = 1 << 30
_MB = 1 << 20
_cpu_lock = threading.Lock()
_cpu_prev: tuple[int, int] | None = None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from /proc/stat; None where it is absent."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def cpu_percent() -> float | None:
    """Busy share of all CPUs (0-100) since the previous call in this process (over 0.1 s on the first)."""
    global _cpu_prev
    now = _cpu_times()
    if now is None:
        return None
    with _cpu_lock:
        prev, _cpu_prev = _cpu_prev, now
    if prev is None:  # first call: sample a short interval rather than report the average since boot
        time.sleep(0.1)
        prev, now = now, _cpu_times() or now
        with _cpu_lock:
            _cpu_prev = now
    busy, total = now if prev is None else (now[0] - prev[0], now[1] - prev[1])
    return round(100.0 * busy / total, 1) if total > 0 else 0.0


def memory_gb() -> tuple[float | None, float | None, float | None]:
    """(used, available, total) RAM in GB from /proc/meminfo (used = total - available)."""
    info: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    info[key] = int(rest.split()[0]) * 1024
    except OSError:
        return None, None, None
    total, avail = info.get("MemTotal"), info.get("MemAvailable")
    if total is None or avail is None:
        return None, None, None
    return (total - avail) / _GB, avail / _GB, total / _GB


def disk_free_gb(path: str | os.PathLike[str] = ".") -> float | None:
    """Free space (for this user) on the filesystem holding ``path`` (its nearest existing parent), in GB."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free / _GB
    except OSError:
        return None


def gpu_stats() -> dict[str, float | None]:
    """Utilization and memory of CUDA device 0, when torch is loaded and sees a GPU (None otherwise).

    torch is not imported here (a 1-2 s import): commands that use a GPU have imported it already.
    """
    out: dict[str, float | None] = {"gpu_util_percent": None, "vram_used_mb": None, "vram_total_mb": None}
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: PLC0415  (the guard before a run needs the figure even if torch is not loaded)
        except ImportError:
            return out
    try:
        if not torch.cuda.is_available():
            return out
        free, total = torch.cuda.mem_get_info(0)
        out["vram_used_mb"] = round((total - free) / _MB, 1)
        out["vram_total_mb"] = round(total / _MB, 1)
        try:
            out["gpu_util_percent"] = float(torch.cuda.utilization(0))
        except Exception:  # needs pynvml; memory figures are still right
            pass
    except Exception as exc:  # a broken driver must not stop a CPU run
        logger.debug("no GPU figures: %s", exc)
    return out


def system_stats(path: str | os.PathLike[str] = ".") -> dict[str, Any]:
    """``cpu_percent, ram_used_gb, ram_total_gb, ram_available_gb, disk_free_gb, gpu_util_percent,
    vram_used_mb, vram_total_mb`` (None where absent; disk of the filesystem holding ``path``)."""
    used, avail, total = memory_gb()
    disk = disk_free_gb(path)
    return {
        "cpu_percent": cpu_percent(),
        "ram_used_gb": None if used is None else round(used, 3),
        "ram_total_gb": None if total is None else round(total, 3),
        "ram_available_gb": None if avail is None else round(avail, 3),
        "disk_free_gb": None if disk is None else round(disk, 3),
        **gpu_stats(),
    }


def usage_metrics(path: str | os.PathLike[str] = ".") -> dict[str, float]:
    """:func:`system_stats` as ``sys/<name>`` metric keys, without the absent ones (for metrics.jsonl / TB)."""
    return {f"sys/{k}": float(v) for k, v in system_stats(path).items() if v is not None}
