"""A real two-node Ray cluster on this machine (``ray start --head`` + ``ray start --address``, each node with its
own custom resources): ``runtime=cluster`` places the runners on the worker node, the worker node is stopped
mid-run, and training continues on the head to the exact step count."""

from __future__ import annotations

import json
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

import psutil
import pytest

from dspy_rl.envs import rust_available

BACKEND = "rust" if rust_available() else "python"
ITER_STEPS = 2 * 64 * 32  # 2 runners x env.num_envs x algo.rollout_len
TOTAL = 8 * ITER_STEPS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    ports = (
        "node-manager-port",
        "object-manager-port",
        "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port",
        "metrics-export-port",
        "runtime-env-agent-port",
    )
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats", *args]
    cmd += [f"--{name}={_free_port()}" for name in ports]
    return subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env
    )


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop one ``ray start --block`` node: its process group, then any descendant left."""
    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _, alive = psutil.wait_procs(tree, timeout=20)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip().endswith("}")]


@pytest.mark.slow  # ~170 s on the shared 2-core machine (two nodes starting, then replacements)
@pytest.mark.timeout(600)
def test_training_survives_the_loss_of_the_worker_node(tmp_path: Path) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="ray2n", dir="/tmp")  # unix socket paths must stay under 108 bytes
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0")
    gcs = f"127.0.0.1:{_free_port()}"
    head = _node(
        [
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs.split(':')[1]}",
            "--include-dashboard=false",
            f"--ray-client-server-port={_free_port()}",
            "--num-cpus=2",
            '--resources={"head": 1}',
            f"--temp-dir={ray_tmp}",
        ],
        env,
    )
    worker = None
    train = None
    run_dir = tmp_path / "run"
    try:
        worker = _node(
            [f"--address={gcs}", "--node-ip-address=127.0.0.1", "--num-cpus=2", '--resources={"worker": 2}'],
            env,
        )
        train = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dspy_rl",
                "train",
                "runtime=cluster",
                f"runtime.ray_address={gcs}",
                "runtime.num_env_runners=2",
                "runtime.num_learners=0",
                "runtime.adaptive_runners=false",
                "runtime.device=cpu",
                "runtime.runner_timeout_s=60",
                "runtime.runner_resource=worker",
                f"env.backend={BACKEND}",
                "env.num_envs=64",
                "algo.rollout_len=32",
                "algo.minibatch_size=512",
                "logging.progress_bar=false",
                "logging.plot=false",
                "logging.log_every=1",
                f"total_env_steps={TOTAL}",
                f"run_dir={run_dir}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        # Wait for the worker node to register and the first rollouts (sampled there) to be learned from.
        deadline = time.monotonic() + 300
        while len(_rows(run_dir)) < 2:
            assert train.poll() is None, f"train exited early:\n{train.stdout.read()[-4000:]}"
            assert time.monotonic() < deadline, "no training iteration within 300 s"
            time.sleep(0.5)
        runner_hosts = [
            p
            for p in psutil.Process(worker.pid).children(recursive=True)
            if "EnvRunner" in " ".join(p.cmdline())
        ]
        assert len(runner_hosts) == 2, "the runners were not placed on the worker node"
        _stop(worker, signal.SIGKILL)  # the node is gone: raylet, its agents and the runner processes
        worker = None
        out, _ = train.communicate(timeout=400)
        assert train.returncode == 0, out[-4000:]
        rows = _rows(run_dir)
        assert rows[-1]["env_steps"] == TOTAL, out[-2000:]
        assert rows[-1]["runner_replacements"] >= 2, rows[-1]
        assert "EnvRunner" in out and "replacement" in out  # the loss was noticed and handled, not skipped
    finally:
        if train is not None and train.poll() is None:
            train.kill()
            train.wait()
        if worker is not None:
            _stop(worker)
        _stop(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)
