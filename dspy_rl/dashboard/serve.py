"""The dashboard as a Ray Serve application (``dspy-rl dashboard serve=true``), next to the judges' app.

The FastAPI app of :func:`dspy_rl.dashboard.app.create_app` becomes the ingress of one Serve deployment (no CPU
reserved: it only reads files); only the SHA-256 of the bearer token reaches the replica.
"""

from __future__ import annotations

import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from dspy_rl.dashboard.app import create_app, token_hash
from dspy_rl.dashboard.config import DashboardConfig

logger = logging.getLogger(__name__)


def build_app(cfg: DashboardConfig, token: str | None = None) -> serve.Application:
    """The Serve application for ``cfg`` (the runs directory must be reachable from the replica's node)."""
    api = create_app(cfg, token_sha256=token_hash(token) if token else None)

    @serve.deployment(name="dashboard", num_replicas=1, ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class Dashboard:
        """Serves the dashboard's pages and API."""

    return Dashboard.bind()


def deploy(cfg: DashboardConfig, token: str | None = None, blocking: bool = False) -> DeploymentHandle:
    """Start Serve's HTTP proxy on ``cfg.host:cfg.port`` (Ray must be initialized) and run the dashboard app."""
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    handle = serve.run(
        build_app(cfg, token), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=blocking
    )
    logger.info("dashboard app %r on http://%s:%d%s", cfg.app_name, cfg.host, cfg.port, cfg.route_prefix)
    return handle
