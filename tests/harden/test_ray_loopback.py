"""Loopback by default: every listening socket of a real `dspy-rl train` (driver, GCS, raylet, agents, EnvRunner
actors) and a real `dspy-rl serve judges` (plus Serve's controller, proxy and replicas) is on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from dspy_rl.envs import rust_available

BACKEND = "rust" if rust_available() else "python"
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
ENV.pop("RAY_ADDRESS", None)


def _listening(root: psutil.Process) -> list[tuple[str, str, int]]:
    """(process name, ip, port) of every listening TCP socket of ``root`` and its descendants."""
    procs = [root, *root.children(recursive=True)]
    pids = {p.pid: p for p in procs}
    out = []
    for c in psutil.net_connections(kind="inet"):
        if c.status == psutil.CONN_LISTEN and c.pid in pids:
            try:
                name = pids[c.pid].name()
            except psutil.Error:
                name = "?"
            out.append((name, c.laddr.ip, c.laddr.port))
    return out


def _is_loopback(ip: str) -> bool:
    return ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or ip.startswith("127.")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _assert_loopback_only(proc: subprocess.Popen, want: set[str]) -> None:
    root = psutil.Process(proc.pid)
    socks = _listening(root)
    names = {n for n, _, _ in socks}
    assert want <= names, f"expected listeners of {want}, found {socks}"
    exposed = [s for s in socks if not _is_loopback(s[1])]
    assert not exposed, f"listening beyond loopback: {exposed}"


def test_train_with_runner_actors_listens_only_on_loopback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "dspy_rl", "train", f"env.backend={BACKEND}", "env.num_envs=16",
           "runtime.num_env_runners=1", "runtime.num_cpus=2", "total_env_steps=100000000", "checkpoint_every=1",
           "logging.progress_bar=false", "logging.plot=false", "logging.tensorboard=false",
           f"run_dir={tmp_path}"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list((tmp_path / "checkpoints").glob("ckpt_*.pt")):  # Ray and the runner actor are up
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.5)
        _assert_loopback_only(proc, {"gcs_server", "raylet"})
    finally:
        _stop(proc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_judges_listens_only_on_loopback() -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "dspy_rl", "serve", "judges", "judges=rubric_only", f"port={port}",
           "autoscaling=fixed"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the judge service did not come up"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                time.sleep(0.5)
        _assert_loopback_only(proc, {"gcs_server", "raylet"})
        socks = _listening(psutil.Process(proc.pid))
        assert any(p == port for _, _, p in socks), socks  # the Serve HTTP proxy is in the tree, on loopback
    finally:
        _stop(proc)


@pytest.mark.parametrize("address", ["auto", "ray://10.0.0.1:10001"])
def test_a_cluster_address_is_passed_through_untouched(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    import ray

    from dspy_rl.utils import ray_local

    seen: dict = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    ray_local.init_ray(address, None, log_to_driver=False)
    assert seen == {"address": address, "log_to_driver": False}
    ray_local.init_ray(None, "10.1.2.3", num_cpus=1)
    assert seen["_node_ip_address"] == "10.1.2.3" and seen["include_dashboard"] is False
