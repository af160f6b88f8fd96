"""`dspy-rl submit`: a short training job on a real local head node started with `ray start --head`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ._helpers import BACKEND, head_logs, ray_head


def test_submit_requires_a_command() -> None:
    from dspy_rl.cli.submit import _parse

    with pytest.raises(SystemExit, match="after `--`"):
        _parse(["train"])
    with pytest.raises(SystemExit, match="unknown command 'fly'"):
        _parse(["--", "fly"])


def test_submit_short_training_job(tmp_path: Path) -> None:
    with ray_head(sys.executable) as (address, env, ray_tmp):
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
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + head_logs(ray_tmp)
        assert "SUCCEEDED" in proc.stdout
        assert "completed: env_steps=2,048" in proc.stdout  # the job's own log, followed by the client
        assert (run_dir / "checkpoints" / "latest").exists()
