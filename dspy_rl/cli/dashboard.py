"""``dspy-rl dashboard [runs_dir=runs] [store=...] [host=127.0.0.1] [port=8270] [key=value ...]``.

Serves the web UI and the JSON API (``/api/rl/*``, OpenAPI at ``/docs``) and Prometheus metrics (``/metrics``)
over a runs directory, until Ctrl-C. ``serve=true`` runs the same app as a Ray Serve deployment instead.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from dspy_rl.config import ConfigError, compose, to_object

logger = logging.getLogger(__name__)

USAGE = """usage: dspy-rl dashboard [runs_dir=runs] [store=runs/traces.db] [host=127.0.0.1] [port=8270] [key=value ...]

Examples:
  dspy-rl dashboard                                       # runs/ on http://127.0.0.1:8270
  dspy-rl dashboard runs_dir=/data/runs port=0             # any free port (printed)
  dspy-rl dashboard store=runs/traces.db ingest_metrics=runs/ingest_metrics.jsonl auto_url=http://127.0.0.1:8290
  DSPY_RL_DASHBOARD_TOKEN=secret dspy-rl dashboard auth_token_env=DSPY_RL_DASHBOARD_TOKEN
  dspy-rl dashboard serve=true ray_address=auto            # as a Ray Serve app in a running cluster
"""

ALIASES = {"runs": "runs_dir", "runs_dir": "runs_dir", "store": "store", "host": "host", "port": "port"}


def load_config(argv: list[str]):
    """Compose conf/dashboard.yaml with the command line and validate it."""
    from dspy_rl.dashboard.config import DashboardConfig  # registers dashboard_schema

    cfg = to_object(compose("dashboard", argv, ALIASES), DashboardConfig)
    if not Path(cfg.runs_dir).is_dir():
        raise ConfigError(
            f"runs_dir={cfg.runs_dir!r} is not a directory; pass the directory your runs write to"
        )
    if cfg.store is not None and not Path(cfg.store).is_file():
        raise ConfigError(
            f"store={cfg.store!r} does not exist; pass a trace store file (stream store=...) or omit it"
        )
    return cfg


def resolve_token(env: str | None) -> str | None:
    """The bearer token from the environment variable ``env`` (ConfigError if set but empty)."""
    if not env:
        return None
    token = os.environ.get(env, "")
    if not token:
        raise ConfigError(
            f"auth_token_env={env!r} but that environment variable is empty; export it or drop the key"
        )
    return token


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another port=<P> (0: any free port)"
        ) from exc
    sock.listen(128)
    return sock


def serve_uvicorn(cfg, token: str | None) -> int:
    import uvicorn

    from dspy_rl.dashboard.app import create_app

    sock = _bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    app = create_app(cfg, token)
    print(
        f"dspy-rl dashboard: {cfg.runs_dir} on http://{host}:{port}/  (API docs /docs, metrics /metrics; Ctrl-C stops)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def serve_ray(cfg, token: str | None) -> int:
    import ray
    from ray import serve

    from dspy_rl.dashboard.serve import deploy

    if not ray.is_initialized():
        kwargs = {"include_dashboard": False, "ignore_reinit_error": True}
        if cfg.ray_address is None:
            kwargs["_node_ip_address"] = "127.0.0.1"
        ray.init(address=cfg.ray_address, **kwargs)
    print(
        f"dspy-rl dashboard: Serve app {cfg.app_name!r} on http://{cfg.host}:{cfg.port}{cfg.route_prefix} (Ctrl-C stops)",
        flush=True,
    )
    try:
        deploy(cfg, token, blocking=True)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
    return 0


def main(argv: list[str]) -> int:
    from dspy_rl.cli.help import render, wants_help
    from dspy_rl.dashboard.config import DashboardConfig  # registers dashboard_schema

    if wants_help(argv):
        print(render(__doc__ + "\n" + USAGE, "dashboard", DashboardConfig))
        return 0
    cfg = load_config(argv)
    token = resolve_token(cfg.auth_token_env)
    if cfg.serve:
        return serve_ray(cfg, token)
    return serve_uvicorn(cfg, token)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
