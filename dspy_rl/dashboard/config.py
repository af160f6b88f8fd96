"""Structured config of ``dspy-rl dashboard`` (conf/dashboard.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require


@dataclass
class GuardThresholds:
    """Default thresholds of the capacity check shown on the system page (a POST may pass others)."""

    min_free_gb: float = 1.0
    """Free disk (GB) required on the filesystem of runs_dir."""
    min_ram_gb: float = 1.0
    """Available RAM (GB) required."""
    min_vram_mb: float = 0.0
    """Free GPU memory (MB) required (0: no GPU needed)."""


@dataclass
class DashboardConfig:
    """``dspy-rl dashboard``: where the data lives, where to listen, how often to refresh."""

    runs_dir: str = "runs"
    """Directory of run directories (each with metrics.jsonl) and sweeps (each with sweep_config.yaml)."""
    store: str | None = None
    """Trace store SQLite file, opened read-only (None: <runs_dir>/traces.db when it exists)."""
    ingest_metrics: str | None = None
    """JSONL of the Kafka ingester's metrics snapshots: events/s and DLQ counts (None: ingest_metrics.jsonl next
    to the store when it exists)."""
    dlq_file: str | None = None
    """Dead letters of a file-bus ingest (None: bus/agent.dlq.jsonl next to the store when it exists)."""
    auto_url: str | None = None
    """Base URL of auto mode's HTTP control (None: the url in <auto_dir>/control.json)."""
    auto_dir: str | None = None
    """Auto mode's state directory (state.json, cycles.jsonl, control.json; None: <runs_dir>/auto)."""
    auto_token_env: str | None = "DSPY_RL_AUTO_TOKEN"
    """Environment variable holding auto mode's own bearer token (sent to its control API when set)."""
    host: str = "127.0.0.1"
    """Bind address; change only to expose the dashboard."""
    port: int = 8270
    """TCP port (0: any free port). Not Ray's dashboard (8265) nor Serve's HTTP port (8000)."""
    auth_token_env: str | None = None
    """Environment variable holding the bearer token that every POST endpoint requires (None: no token)."""
    page_size: int = 50
    """Runs per page of the runs list (the API takes page_size up to 1000)."""
    live_window_s: float = 120.0
    """A run whose metrics.jsonl changed this recently and has not reached its budget counts as live."""
    poll_ms: int = 2000
    """How often pages of live runs and the system page refresh (milliseconds)."""
    scan_ttl_s: float = 2.0
    """Seconds a scan of runs_dir is reused before the directory tree is walked again."""
    stats_interval_s: float = 2.0
    """Seconds between samples of the machine's CPU/RAM/GPU use kept for the system charts."""
    stats_history: int = 600
    """Machine-use samples kept (the charts show this many)."""
    serve: bool = False
    """Run as a Ray Serve deployment (on host:port) instead of a plain uvicorn server."""
    ray_address: str | None = None
    """With serve=true: None starts local Ray on loopback; "auto" joins a running cluster."""
    app_name: str = "dashboard"
    """Serve application name (serve=true)."""
    route_prefix: str = "/"
    """Serve route prefix (serve=true); pages and API live under it."""
    guard: GuardThresholds = field(default_factory=GuardThresholds)
    """Capacity guard thresholds shown on the system page."""

    def __post_init__(self) -> None:
        require(bool(self.runs_dir), "runs_dir", self.runs_dir, "a directory path")
        require(0 <= self.port <= 65535, "port", self.port, "an int in [0, 65535]")
        require(self.port != 8265, "port", self.port, "any port but 8265 (Ray's dashboard)")
        require(1 <= self.page_size <= 1000, "page_size", self.page_size, "an int in [1, 1000]")
        require(self.live_window_s > 0, "live_window_s", self.live_window_s, "a float > 0")
        require(self.poll_ms >= 100, "poll_ms", self.poll_ms, "an int >= 100")
        require(self.scan_ttl_s >= 0, "scan_ttl_s", self.scan_ttl_s, "a float >= 0")
        require(self.stats_interval_s > 0, "stats_interval_s", self.stats_interval_s, "a float > 0")
        require(self.stats_history >= 1, "stats_history", self.stats_history, "an int >= 1")
        require(
            self.route_prefix.startswith("/"), "route_prefix", self.route_prefix, "a path starting with /"
        )
        for key in ("min_free_gb", "min_ram_gb", "min_vram_mb"):
            value = getattr(self.guard, key)
            require(value >= 0, f"guard.{key}", value, "a number >= 0")


ConfigStore.instance().store(name="dashboard_schema", node=DashboardConfig)
