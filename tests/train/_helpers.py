"""Helpers shared by the training tests."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from dspy_rl.envs import rust_available

BACKEND = "rust" if rust_available() else "python"

# A small, fast configuration: in-process runner unless a test asks for actors.
FAST = [
    f"env.backend={BACKEND}",
    "env.num_envs=64",
    "algo.rollout_len=32",
    "algo.minibatch_size=512",
    "logging.progress_bar=false",
    "logging.plot=false",
    "runtime.num_env_runners=0",
]


def random_batch(
    n: int, obs_dim: int, num_tools: int, num_args: int, seed: int = 0, grpo: bool = False
) -> dict[str, torch.Tensor]:
    """A learner batch of random observations, masks (action 0 always allowed) and targets: PPO's advantages and
    returns per policy, or GRPO's one advantage per sample with ``grpo``."""
    g = torch.Generator().manual_seed(seed)
    tool_mask = torch.rand(n, num_tools, generator=g) < 0.6
    arg_mask = torch.rand(n, num_args, generator=g) < 0.6
    tool_mask[:, 0] = arg_mask[:, 0] = True
    batch = {
        "obs": torch.randn(n, obs_dim, generator=g),
        "tool_mask": tool_mask,
        "arg_mask": arg_mask,
        "phase": (torch.rand(n, generator=g) < 0.8).to(torch.uint8),
        "tools": torch.zeros(n, dtype=torch.long),
        "args": torch.zeros(n, dtype=torch.long),
        "arg_active": torch.rand(n, generator=g) < 0.3,
        "logp_tool": -torch.rand(n, generator=g),
        "logp_arg": -torch.rand(n, generator=g),
    }
    if grpo:
        batch["adv"] = torch.randn(n, generator=g)
    else:
        batch |= {k: torch.randn(n, generator=g) for k in ("adv_tool", "ret_tool", "adv_arg", "ret_arg")}
    return batch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def head_logs(ray_tmp: str) -> str:
    """The tails of a head node's job-server logs (for assertion messages)."""
    tails = []
    for name in ("dashboard_JobHead.log", "dashboard_agent.log", "job-driver-*.log"):
        for path in Path(ray_tmp).glob(f"session_latest/logs/{name}"):
            tails.append(
                f"\n--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-25:])
            )
    return "".join(tails)


@contextlib.contextmanager
def ray_head(python: str, env: Mapping[str, str] | None = None) -> Iterator[tuple[str, dict[str, str], str]]:
    """A real local head node (``ray start --head`` run by ``python``) with its job server on a free port; yields
    (job server address, the environment a client needs, the head's temp dir) and stops the head afterwards."""
    ray_tmp = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # unix socket paths must stay under 108 bytes
    # Ray 2.60 clusters use token authentication; the head and the client share a fresh token.
    env = {k: v for k, v in (env if env is not None else os.environ).items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    env["PATH"] = f"{Path(python).parent}:{env.get('PATH', '')}"  # the job's `python` is this one
    dash_port = _free_port()
    head = subprocess.Popen(
        [
            python,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={_free_port()}",
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
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                httpx.get(f"{address}/api/version", timeout=2)  # any HTTP answer: the dashboard is up
                break
            except Exception:
                pass
            assert head.poll() is None, "ray start --head exited"
            assert time.monotonic() < deadline, "the head node's job server did not come up"
            time.sleep(1)
        yield address, env, ray_tmp
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)
