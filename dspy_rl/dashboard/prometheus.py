"""Prometheus text metrics of live training (``GET /metrics``), built with prometheus_client's collector API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

#: (metric name, run summary key, help)
RUN_GAUGES = (
    ("dspy_rl_run_env_steps", "steps", "Env steps (or optimizer steps for text GRPO) done by the run."),
    ("dspy_rl_run_budget_steps", "budget", "The run's step budget."),
    ("dspy_rl_run_env_steps_per_second", "env_steps_per_s", "Env steps per second (mean of the last rows)."),
    ("dspy_rl_run_success_rate", "success_rate", "Rolling success rate (mean reward for text GRPO)."),
    ("dspy_rl_run_episode_return", "episode_return", "Rolling mean episode return."),
    ("dspy_rl_run_eta_seconds", "eta_s", "Estimated seconds until the run reaches its budget."),
)


class _Collector:
    def __init__(self, runs: Callable[[], list[dict[str, Any]]], machine: Callable[[], dict[str, Any]]):
        self.runs, self.machine = runs, machine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runs = self.runs()
        by_status = GaugeMetricFamily(
            "dspy_rl_runs", "Runs under the runs directory by status.", labels=["status"]
        )
        for status in ("live", "finished", "failed"):
            by_status.add_metric([status], sum(r["status"] == status for r in runs))
        yield by_status
        live = [r for r in runs if r["status"] == "live"]
        for name, key, help_ in RUN_GAUGES:
            g = GaugeMetricFamily(name, help_, labels=["run", "algorithm", "env"])
            for r in live:
                v = r.get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    g.add_metric([r["id"], r["algorithm"], r["env"]], float(v))
            yield g
        stats = self.machine()
        for key, help_ in (
            ("cpu_percent", "Busy share of all CPUs (percent)."),
            ("ram_used_gb", "RAM in use (GB)."),
            ("ram_total_gb", "RAM installed (GB)."),
            ("disk_free_gb", "Free disk on the runs directory's filesystem (GB)."),
            ("gpu_util_percent", "GPU utilization (percent)."),
            ("vram_used_mb", "GPU memory in use (MB)."),
        ):
            v = stats.get(key)
            if isinstance(v, int | float):
                yield GaugeMetricFamily(f"dspy_rl_machine_{key}", help_, value=float(v))


def render(runs: Callable[[], list[dict[str, Any]]], machine: Callable[[], dict[str, Any]]) -> bytes:
    """The exposition text (format 0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(runs, machine))
    return generate_latest(registry)
