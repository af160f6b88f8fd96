"""The same dashboard app as a Ray Serve deployment (next to the judges), under a route prefix, with a token."""

from __future__ import annotations

import socket

import httpx
import pytest

from dspy_rl.dashboard.config import DashboardConfig

TOKEN = "serve-s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(runs_dir, ray_session):
    from ray import serve

    from dspy_rl.dashboard.serve import deploy

    cfg = DashboardConfig(
        runs_dir=str(runs_dir), port=free_port(), route_prefix="/dash", app_name="dash-test"
    )
    deploy(cfg, TOKEN)
    yield f"http://127.0.0.1:{cfg.port}/dash/"
    serve.delete(cfg.app_name)
    serve.shutdown()


def test_serve_deployment_serves_pages_api_and_needs_the_token(served) -> None:
    page = httpx.get(served, timeout=60)
    assert page.status_code == 200 and '<base href="/dash/">' in page.text and 'data-auth="1"' in page.text
    js = httpx.get(served + "static/vendor/uPlot.iife.min.js", timeout=60)
    assert js.status_code == 200 and "uPlot" in js.text[:100]
    runs = httpx.get(served + "api/rl/sessions", timeout=60).json()
    assert {r["id"] for r in runs["sessions"]} >= {"train/tiny", "train/corrupt"}
    assert httpx.get(served + "api/rl/sessions/train/nope", timeout=60).status_code == 404
    assert httpx.post(served + "api/system/guard", json={}, timeout=60).status_code == 401
    ok = httpx.post(
        served + "api/system/guard", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60
    )
    assert ok.status_code == 200 and ok.json()["checks"]
    assert "dspy_rl_runs" in httpx.get(served + "metrics", timeout=60).text
