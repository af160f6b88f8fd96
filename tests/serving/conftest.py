"""Fixtures for the OpenAI-compatible servers: a free port, a `serve lm` app on real Ray Serve."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lm_server(ray_session):
    """`serve lm` with the tiny model on 127.0.0.1, token-protected: yields (base_url, token, cfg)."""
    from ray import serve

    from dspy_rl.serving.lm_app import deploy
    from dspy_rl.serving.lm_config import LMServeConfig

    cfg = LMServeConfig(
        port=free_port(), app_name=f"lm_{uuid.uuid4().hex[:6]}", num_cpus=0, max_body_bytes=4096
    )
    token = "lm-test-token"
    deploy(cfg, token)
    yield f"http://127.0.0.1:{cfg.port}/v1", token, cfg
    serve.delete(cfg.app_name)
    serve.shutdown()


def processes_with_marker(marker: str) -> list[int]:
    """Pids whose environment holds ``marker`` (children inherit it: Ray's daemons included)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def run_cli_until_ready(
    args: list[str],
    url: str,
    env_extra: dict[str, str],
    timeout_s: float = 180.0,
    headers: dict | None = None,
):
    """Start ``dspy-rl <args>`` with a marker in its environment; wait until ``url`` answers; return (proc, marker)."""
    import httpx

    marker = f"DSPY_RL_TEST_MARKER={uuid.uuid4().hex}"
    env = {**os.environ, **env_extra, marker.split("=")[0]: marker.split("=")[1]}
    proc = subprocess.Popen(
        ["dspy-rl", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dspy-rl {args} exited early:\n{proc.stdout.read()}")
        try:
            if httpx.get(url, timeout=2, headers=headers or {}).status_code == 200:
                return proc, marker
        except httpx.HTTPError:
            pass
        time.sleep(1)
    proc.kill()
    raise AssertionError(f"dspy-rl {args} did not answer {url} within {timeout_s}s")
