"""Capacity guard: refuse a run (skip an auto-mode cycle) when the machine lacks disk, RAM or VRAM.

The three thresholds are declared once, in :class:`GuardConfig`, which every command that starts a run nests as
``guard`` (``dspy-rl train guard.min_free_gb=20``, ``dspy-rl grpo train guard.min_ram_gb=4``, ``dspy-rl stream
auto guard.min_vram_mb=8000``). :func:`check_capacity` compares the machine with them; a failed check names the
figure, the threshold and the setting to change. ``dspy-rl system guard`` prints the check.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from dspy_rl.config import require
from dspy_rl.system.stats import disk_free_gb, gpu_stats, memory_gb, system_stats

__all__ = ["CapacityError", "GuardCheck", "GuardConfig", "GuardReport", "check_capacity", "system_stats"]


@dataclass
class GuardConfig:
    """Minimum free resources for a run to start (0 turns a check off)."""

    enabled: bool = True
    """Check capacity before the run (false: never refuse; the figures are still recorded)."""
    min_free_gb: float = 1.0
    """Free disk (GB) required on the filesystem of the run directory / trace store."""
    min_ram_gb: float = 1.0
    """Available RAM (GB, MemAvailable: free plus reclaimable cache) required."""
    min_vram_mb: float = 0.0
    """Free GPU memory (MB) on CUDA device 0 required; a machine without a GPU fails a check > 0."""

    def __post_init__(self) -> None:
        require(self.min_free_gb >= 0, "guard.min_free_gb", self.min_free_gb, "a float >= 0")
        require(self.min_ram_gb >= 0, "guard.min_ram_gb", self.min_ram_gb, "a float >= 0")
        require(self.min_vram_mb >= 0, "guard.min_vram_mb", self.min_vram_mb, "a float >= 0")


@dataclass
class GuardCheck:
    """One compared figure."""

    name: str
    """``disk_free``, ``ram_available`` or ``vram_free``."""
    value: float | None
    """Measured figure (None: not measurable here, e.g. no GPU)."""
    required: float
    """The threshold."""
    unit: str
    """``GB`` or ``MB``."""
    ok: bool
    """value >= required (a threshold of 0 always passes)."""
    setting: str
    """The config key of the threshold."""
    detail: str = ""
    """Where it was measured (path, device)."""

    def describe(self) -> str:
        if self.required <= 0:
            return f"{self.name} not checked ({self.setting}=0)"
        shown = "unavailable" if self.value is None else f"{self.value:.2f} {self.unit}"
        verdict = ">=" if self.ok else "<"
        where = f" ({self.detail})" if self.detail else ""
        return f"{self.name} {shown}{where} {verdict} {self.required:g} {self.unit} required ({self.setting})"


@dataclass
class GuardReport:
    """The result of :func:`check_capacity`."""

    ok: bool
    checks: list[GuardCheck] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[GuardCheck]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        """``{"ok", "checks": [{name, value, required, unit, ok, setting, detail}], "stats": system_stats()}``."""
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks], "stats": self.stats}

    def refusal(self, what: str = "run") -> str:
        """One line: what failed, by how much, and which setting to change."""
        parts = "; ".join(c.describe() for c in self.failed)
        keys = ", ".join(f"{c.setting}=<lower>" for c in self.failed)
        return f"capacity guard refused the {what}: {parts}. Free resources or pass {keys} (guard.enabled=false skips the check)"


class CapacityError(RuntimeError):
    """The capacity guard refused a run; ``report`` holds the figures."""

    def __init__(self, report: GuardReport, what: str = "run") -> None:
        super().__init__(report.refusal(what))
        self.report = report


def check_capacity(
    min_free_gb: float,
    min_ram_gb: float,
    min_vram_mb: float,
    path: str | os.PathLike[str] = ".",
) -> GuardReport:
    """Compare free disk at ``path``, available RAM and free VRAM with the thresholds."""
    checks: list[GuardCheck] = []
    disk = disk_free_gb(path)
    checks.append(
        GuardCheck(
            "disk_free",
            None if disk is None else round(disk, 3),
            float(min_free_gb),
            "GB",
            min_free_gb <= 0 or (disk is not None and disk >= min_free_gb),
            "guard.min_free_gb",
            os.fspath(path),
        )
    )
    _, avail, _ = memory_gb()
    checks.append(
        GuardCheck(
            "ram_available",
            None if avail is None else round(avail, 3),
            float(min_ram_gb),
            "GB",
            min_ram_gb <= 0 or (avail is not None and avail >= min_ram_gb),
            "guard.min_ram_gb",
        )
    )
    vram_free: float | None = None
    detail = "no CUDA device"
    if min_vram_mb > 0:
        gpu = gpu_stats()
        if gpu["vram_total_mb"] is not None and gpu["vram_used_mb"] is not None:
            vram_free = round(gpu["vram_total_mb"] - gpu["vram_used_mb"], 1)
            detail = "cuda:0"
    else:
        detail = "not required"
    checks.append(
        GuardCheck(
            "vram_free",
            vram_free,
            float(min_vram_mb),
            "MB",
            min_vram_mb <= 0 or (vram_free is not None and vram_free >= min_vram_mb),
            "guard.min_vram_mb",
            detail,
        )
    )
    return GuardReport(all(c.ok for c in checks), checks, system_stats(path))


def enforce(cfg: GuardConfig, path: str | os.PathLike[str] = ".", what: str = "run") -> GuardReport:
    """:func:`check_capacity` with ``cfg``; raises :class:`CapacityError` on a refusal (unless disabled)."""
    report = check_capacity(cfg.min_free_gb, cfg.min_ram_gb, cfg.min_vram_mb, path)
    if cfg.enabled and not report.ok:
        raise CapacityError(report, what)
    return report
