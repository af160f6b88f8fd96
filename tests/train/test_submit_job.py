"""`dspy-rl submit`: a short training job on a real local head node started with `ray start --head`."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ._helpers import BACKEND


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _head_logs(ray_tmp: str) -> str:
    tails = []
    for name in ("dashboard_JobHead.log", "dashboard_agent.log", "job-driver-*.log"):
        for path in Path(ray_tmp).glob(f"session_latest/logs/{name}"):
            tails.append(
                f"\n--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:])
            )
    return "".join(tails)


def test_submit_requires_a_command() -> None:
    from dspy_rl.cli.submit import _parse

    with pytest.raises(SystemExit, match="after `--`"):
        _parse(["train"])
    with pytest.raises(SystemExit, match="unknown command 'fly'"):
        _parse(["--", "fly"])


def test_submit_short_training_job(tmp_path: Path) -> None:
    gcs_port, dash_port = _free_port(), _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # unix socket paths must stay under 108 bytes
    # Ray 2.60 clusters use token authentication; the head and the client share a fresh token.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the job's `python` is this venv's
    ray_bin = Path(sys.executable).parent / "ray"
    head = subprocess.Popen(
        [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs_port}",
            f"--dashboard-port={dash_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=2",
            f"--temp-dir={ray_tmp}",
            "--disable-usage-stats",
            # Every fixed default port moved: the test session's own Ray instance already holds them.
            *(
                f"--{name}={_free_port()}"
                for name in (
                    "dashboard-agent-listen-port",
                    "dashboard-agent-grpc-port",
                    "metrics-export-port",
                    "runtime-env-agent-port",
                    "ray-client-server-port",
                    "node-manager-port",
                    "object-manager-port",
                )
            ),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    address = f"http://127.0.0.1:{dash_port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                import httpx

                httpx.get(f"{address}/api/version", timeout=2)  # any HTTP answer: the dashboard is up
                break
            except Exception:
                pass
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the head node's job server did not come up"
            time.sleep(1)
        run_dir = tmp_path / "run"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "dspy_rl",
                "submit",
                "--address",
                address,
                "--timeout",
                "300",
                "--",
                "train",
                f"env.backend={BACKEND}",
                "env.num_envs=32",
                "algo.rollout_len=16",
                "total_env_steps=2048",
                "runtime.num_env_runners=1",
                "logging.progress_bar=false",
                f"run_dir={run_dir}",
            ],
            capture_output=True,
            text=True,
            timeout=420,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + _head_logs(ray_tmp)
        assert "SUCCEEDED" in proc.stdout
        assert "completed: env_steps=2,048" in proc.stdout  # the job's own log, followed by the client
        assert (run_dir / "checkpoints" / "latest").exists()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
