"""The dashboard's FastAPI app: pages (a single-page UI under ``/``), the JSON API and ``/metrics``.

API (OpenAPI schema at ``/openapi.json``, docs at ``/docs``):

* ``GET /api/rl/status`` — run counts by status, live runs, sweeps, machine, guard and auto-mode availability;
* ``GET /api/rl/sessions`` (``status``, ``q``, ``page``, ``page_size``) — the runs list, paginated;
* ``GET /api/rl/sessions/{id}`` and ``GET /api/rl/sessions/{id}/metrics?after=N`` — one run, its metric rows;
* ``GET /api/rl/sweeps`` and ``GET /api/rl/sweeps/{id}`` — sweeps, one sweep's trials/history/Pareto/importance;
* ``GET /api/rl/performance/summary`` and ``/api/rl/performance/trends`` — across runs;
* ``GET /api/system/stats``; ``POST /api/system/guard`` — the capacity check (thresholds in the body, optional);
* ``GET /api/grpo/auto/status``; ``POST /api/grpo/auto/start`` and ``/stop`` — auto mode (503 when unavailable);
* ``GET /api/traces/summary`` — the trace store; ``GET /files/{path}`` — a file under runs_dir (images,
  checkpoints); ``GET /metrics`` — Prometheus text.

Unknown run or sweep ids get 404 naming the id; paths outside runs_dir get 404. With a token, every POST needs
``Authorization: Bearer <token>`` (401 otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from dspy_rl.dashboard.auto import AutoClient, AutoUnavailable
from dspy_rl.dashboard.config import DashboardConfig
from dspy_rl.dashboard.files import NotFound, inside
from dspy_rl.dashboard.machine import StatsSampler, read_stats
from dspy_rl.dashboard.performance import summary as perf_summary
from dspy_rl.dashboard.performance import trends as perf_trends
from dspy_rl.dashboard.prometheus import render as render_metrics
from dspy_rl.dashboard.runs import STATUSES, RunIndex
from dspy_rl.dashboard.sweeps import list_sweeps, sweep_detail
from dspy_rl.dashboard.traces import StoreUnavailable, dlq_summary, ingest_summary, store_summary

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


class GuardRequest(BaseModel):
    """Thresholds for one capacity check (omitted ones take the dashboard's configured defaults)."""

    min_free_gb: float | None = Field(
        None, ge=0, description="Free disk (GB) required on runs_dir's filesystem."
    )
    min_ram_gb: float | None = Field(None, ge=0, description="Available RAM (GB) required.")
    min_vram_mb: float | None = Field(None, ge=0, description="Free GPU memory (MB) required.")


def token_hash(token: str) -> str:
    """SHA-256 hex of a bearer token (what replicas keep instead of the token)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class DashboardState:
    """What every route shares: the config, the run index and machine sampler (caches), auto mode's client, the
    trace store's path and the bearer-token check."""

    cfg: DashboardConfig
    root: Path
    runs: RunIndex
    sampler: StatsSampler
    auto: AutoClient
    store_path: Path
    required: str | None
    """SHA-256 hex of the bearer token POST endpoints need, or None when they need none."""

    @classmethod
    def build(cls, cfg: DashboardConfig, required: str | None) -> DashboardState:
        """The state over ``cfg.runs_dir``, with one machine sample already taken."""
        root = Path(cfg.runs_dir)
        sampler = StatsSampler(cfg.stats_interval_s, cfg.stats_history, str(root if root.exists() else "."))
        # The first machine sample imports torch for the GPU figures (seconds on a loaded machine): take it now,
        # before the server answers, so no request waits behind that import.
        sampler.samples.append(read_stats(sampler.path))
        auto_token = os.environ.get(cfg.auto_token_env) or None if cfg.auto_token_env else None
        return cls(
            cfg=cfg,
            root=root,
            runs=RunIndex(root, cfg.live_window_s, cfg.scan_ttl_s),
            sampler=sampler,
            auto=AutoClient(cfg.auto_url, cfg.auto_dir or str(root / "auto"), auto_token),
            store_path=Path(cfg.store) if cfg.store else root / "traces.db",
            required=required,
        )

    def require_token(self, request: Request) -> None:
        """401 unless the request carries the bearer token (when one is required)."""
        if self.required is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token_hash(given.strip()), self.required):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    def all_runs(self) -> list[dict[str, Any]]:
        """Every run under runs_dir (one unpaginated listing)."""
        return self.runs.list(page_size=10**9)["sessions"]

    def machine(self) -> dict[str, Any]:
        """The newest machine sample."""
        self.sampler.ensure_started()
        hist = self.sampler.history()
        return hist[-1] if hist else read_stats(str(self.root if self.root.exists() else "."))

    def guard(self, body: GuardRequest) -> dict[str, Any]:
        """The capacity check with ``body``'s thresholds, the configured ones where omitted."""
        from dspy_rl.system.guard import check_capacity

        g = self.cfg.guard
        report = check_capacity(
            g.min_free_gb if body.min_free_gb is None else body.min_free_gb,
            g.min_ram_gb if body.min_ram_gb is None else body.min_ram_gb,
            g.min_vram_mb if body.min_vram_mb is None else body.min_vram_mb,
            path=str(self.root if self.root.exists() else "."),
        )
        return report.to_json()


def add_pages_routes(app: FastAPI, state: DashboardState) -> None:
    """``/`` (the single-page UI, with its settings filled in) and ``/favicon.ico``."""
    cfg = state.cfg

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/") + "/"
        html = (STATIC_DIR / "index.html").read_text()
        html = html.replace("__BASE__", base).replace("__POLL_MS__", str(cfg.poll_ms))
        html = html.replace("__PAGE_SIZE__", str(cfg.page_size)).replace(
            "__AUTH__", "1" if state.required else "0"
        )
        return HTMLResponse(html)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def add_runs_routes(app: FastAPI, state: DashboardState) -> None:
    """``/api/rl/status`` and the runs (``/api/rl/sessions...``)."""
    cfg, runs, auto = state.cfg, state.runs, state.auto

    @app.get("/api/rl/status", tags=["rl"])
    def status() -> dict[str, Any]:
        """Run counts by status, the live runs, sweep count, machine use, guard verdict, auto-mode reachability."""
        listing = runs.list(page_size=10**9)
        live = [r for r in listing["sessions"] if r["status"] == "live"]
        try:
            auto_state: Any = {"available": True, **auto.status()}
        except AutoUnavailable as exc:
            auto_state = {"available": False, "reason": str(exc)}
        return {
            "runs_dir": str(state.root),
            "counts": listing["counts"],
            "live": live[:50],
            "sweeps": len(list_sweeps(state.root, cfg.live_window_s)),
            "machine": state.machine(),
            "guard": state.guard(GuardRequest()),
            "auto": auto_state,
        }

    @app.get("/api/rl/sessions", tags=["rl"])
    def sessions(
        status: str | None = Query(None, description="live | finished | failed"),
        q: str | None = Query(None, description="substring of the run id"),
        page: int = Query(1, ge=1),
        page_size: int | None = Query(None, ge=1, le=1000),
    ) -> dict[str, Any]:
        """A page of runs, most recently updated first."""
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status={status!r}; expected one of {', '.join(STATUSES)}")
        return runs.list(status, q, page, page_size or cfg.page_size)

    @app.get("/api/rl/sessions/{run_id:path}/metrics", tags=["rl"])
    def session_metrics(
        run_id: str, after: int = Query(0, ge=0, description="first line to return")
    ) -> dict[str, Any]:
        """Metric rows of one run from line ``after`` on; ``next`` is where the next poll starts."""
        try:
            out = runs.metrics(run_id, after)
            out["summary"] = runs.summary(run_id)
            return out
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/api/rl/sessions/{run_id:path}", tags=["rl"])
    def session(run_id: str) -> dict[str, Any]:
        """One run: summary, resolved config, checkpoints."""
        try:
            return runs.detail(run_id)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc


def add_sweeps_routes(app: FastAPI, state: DashboardState) -> None:
    """``/api/rl/sweeps`` and one sweep."""
    root, window = state.root, state.cfg.live_window_s

    @app.get("/api/rl/sweeps", tags=["rl"])
    def sweeps() -> dict[str, Any]:
        """Every sweep under runs_dir with its best trial."""
        return {"sweeps": list_sweeps(root, window)}

    @app.get("/api/rl/sweeps/{sweep_id:path}", tags=["rl"])
    def sweep(sweep_id: str) -> dict[str, Any]:
        """One sweep: trials table, optimization history, Pareto front, parameter importance."""
        try:
            return sweep_detail(root, sweep_id, window)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc


def add_performance_routes(app: FastAPI, state: DashboardState) -> None:
    """``/api/rl/performance/summary`` and ``/trends``: figures across runs."""

    @app.get("/api/rl/performance/summary", tags=["rl"])
    def performance_summary() -> dict[str, Any]:
        """Runs, env steps, throughput and success, overall and per algorithm/env."""
        return perf_summary(state.all_runs())

    @app.get("/api/rl/performance/trends", tags=["rl"])
    def performance_trends(window: int = Query(5, ge=1, le=100)) -> dict[str, Any]:
        """Each run's success and throughput in start order, with a moving average."""
        return perf_trends(state.all_runs(), window)


def add_system_routes(app: FastAPI, state: DashboardState) -> None:
    """``/api/system/stats`` and the capacity guard (``POST`` needs the token)."""

    @app.get("/api/system/stats", tags=["system"])
    def system_stats() -> dict[str, Any]:
        """The newest machine sample and the history the charts draw."""
        return {
            "now": state.machine(),
            "history": state.sampler.history(),
            "interval_s": state.cfg.stats_interval_s,
        }

    @app.get("/api/system/guard", tags=["system"])
    def guard_default() -> dict[str, Any]:
        """The capacity check with the configured thresholds (read-only)."""
        return state.guard(GuardRequest())

    @app.post("/api/system/guard", tags=["system"], dependencies=[Depends(state.require_token)])
    def guard(body: GuardRequest | None = None) -> dict[str, Any]:
        """Run the capacity check (disk, RAM, VRAM) with the given or configured thresholds."""
        return state.guard(body or GuardRequest())


def add_auto_routes(app: FastAPI, state: DashboardState) -> None:
    """GRPO auto mode: status, start, stop (503 when unavailable; ``POST`` needs the token)."""
    auto = state.auto

    @app.get("/api/grpo/auto/status", tags=["grpo"])
    def auto_status() -> dict[str, Any]:
        """Auto mode's state: cycles, levels, running or stopped."""
        try:
            return auto.status()
        except AutoUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.post("/api/grpo/auto/start", tags=["grpo"], dependencies=[Depends(state.require_token)])
    def auto_start() -> dict[str, Any]:
        """Start auto mode's cycles."""
        try:
            return auto.control("start")
        except AutoUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.post("/api/grpo/auto/stop", tags=["grpo"], dependencies=[Depends(state.require_token)])
    def auto_stop() -> dict[str, Any]:
        """Stop auto mode after its current cycle."""
        try:
            return auto.control("stop")
        except AutoUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc


def add_traces_routes(app: FastAPI, state: DashboardState) -> None:
    """``/api/traces/summary``: the trace store, the Kafka ingester's metrics and the file bus's dead letters."""
    cfg, store_path = state.cfg, state.store_path

    @app.get("/api/traces/summary", tags=["traces"])
    def traces_summary() -> dict[str, Any]:
        """Span counts, events/s, recent actions (store) and DLQ counts (ingest metrics)."""
        out: dict[str, Any] = {}
        try:
            out["store"] = store_summary(store_path)
        except StoreUnavailable as exc:
            out["store"] = None
            out["store_error"] = str(exc)
        ingest_path = (
            Path(cfg.ingest_metrics) if cfg.ingest_metrics else store_path.with_name("ingest_metrics.jsonl")
        )
        if ingest_path.is_file():
            try:
                out["ingest"] = ingest_summary(ingest_path)
            except StoreUnavailable as exc:
                out["ingest"] = None
                out["ingest_error"] = str(exc)
        else:
            out["ingest"] = None
            out["ingest_error"] = f"no Kafka ingester metrics at {ingest_path} (set ingest_metrics=<file>)"
        dlq_path = Path(cfg.dlq_file) if cfg.dlq_file else store_path.parent / "bus" / "agent.dlq.jsonl"
        out["dlq"] = dlq_summary(dlq_path) if dlq_path.is_file() else None
        if out["dlq"] is None:
            out["dlq_error"] = f"no file-bus dead letters at {dlq_path} (set dlq_file=<file>)"
        return out


def add_files_metrics_routes(app: FastAPI, state: DashboardState) -> None:
    """``/files/{path}`` (a file under runs_dir) and ``/metrics`` (Prometheus text)."""
    root = state.root

    @app.get("/files/{path:path}", tags=["files"])
    def files(path: str) -> FileResponse:
        """A file under runs_dir (learning curves, Pareto plots, checkpoints); anything else is 404."""
        try:
            target = inside(root, path)
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        if not target.is_file():
            raise HTTPException(404, f"no file {path!r} under the runs directory")
        return FileResponse(target)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text: runs by status, each live run's steps, throughput, success, ETA; machine use."""
        return Response(
            render_metrics(state.all_runs, state.machine),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )


#: The route registrars, in the order their routes are matched (and listed in the OpenAPI schema). Routes go on the
#: app itself, not through included APIRouters: Serve's ingress pickles the app, and FastAPI rebuilds an included
#: router's routes lazily in the replica, where the pickled closures' string annotations (Request) no longer resolve.
ROUTE_REGISTRARS = (
    add_pages_routes,
    add_runs_routes,
    add_sweeps_routes,
    add_performance_routes,
    add_system_routes,
    add_auto_routes,
    add_traces_routes,
    add_files_metrics_routes,
)


def create_app(cfg: DashboardConfig, token: str | None = None, token_sha256: str | None = None) -> FastAPI:
    """The dashboard app over ``cfg.runs_dir``; every POST endpoint requires the bearer ``token`` (or the token
    whose SHA-256 is ``token_sha256``, so a Serve replica never holds the token itself) when one is given."""
    state = DashboardState.build(cfg, token_hash(token) if token else token_sha256)
    sampler = state.sampler

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        sampler.ensure_started()
        yield
        sampler.stop()

    app = FastAPI(
        title="dspy-rl dashboard",
        description="Runs, sweeps, GRPO auto mode, the trace store and the machine. POST endpoints need the "
        "bearer token when the dashboard was started with one.",
        version="1",
        lifespan=lifespan,
    )
    app.state.sampler = sampler
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for add_routes in ROUTE_REGISTRARS:
        add_routes(app, state)
    return app
