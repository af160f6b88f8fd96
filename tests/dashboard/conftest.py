"""Real data for the dashboard tests: a short `dspy-rl train` run, a copy with corrupt metrics lines, a small real
PPO sweep (`dspy-rl sweep sweep=ppo_tiny`), and a trace store filled by `dspy-rl stream ingest` (with dead letters);
and the dashboard itself, started with `dspy-rl dashboard` on a free loopback port."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dspy_rl import PACKAGE_DIR
from dspy_rl.envs import rust_available

BACKEND = "rust" if rust_available() else "python"
#: A short training run (in-process runner; a few seconds).
TINY = [
    f"env.backend={BACKEND}",
    "env.num_envs=64",
    "env.num_threads=1",
    "algo.rollout_len=32",
    "algo.minibatch_size=512",
    "logging.progress_bar=false",
    "logging.tensorboard=false",
    "runtime.num_env_runners=0",
    "runtime.device=cpu",
]
ENV = {
    **os.environ,
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "PYTHONPATH": str(PACKAGE_DIR.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
}
BAD_METRICS_LINES = ['{"env_steps": 999, "success_rate": ', "this is not json", "[1, 2, 3]"]
BAD_EVENTS = ['{"kind": "tool", "v": 1', '{"v": 1, "kind": "nonsense", "trace_id": "t", "agent_id": "a"}']


def dspy_rl(*args: str, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_rl", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )
    assert proc.returncode == 0, (
        f"dspy-rl {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="session")
def private_tmp() -> Iterator[Path]:
    """A temp dir of this session only: pytest's basetemp is shared by everyone's sessions on this machine and
    rotated (the oldest deleted) when others start, which must not delete our runs under a running dashboard."""
    path = Path(tempfile.mkdtemp(prefix="dspy-rl-dash-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def runs_dir(private_tmp, ray_session) -> Path:
    """A runs directory with real output of train, sweep and stream ingest. The sweep is a real Ray Tune sweep with
    the protein searcher on the synthetic ``ppo_like`` objective (its trials diverge for lr > 0.03, so some fail),
    in this process on the session's Ray instance; ``ppo_sweep_dir`` has the slower sweep of real PPO trials."""
    root = private_tmp / "dash" / "runs"
    tiny = root / "train" / "tiny"
    dspy_rl(
        "train", *TINY, "total_env_steps=8192", "checkpoint_every=2", "eval_episodes=64", f"run_dir={tiny}"
    )
    # the same run with corrupt lines in its metrics (a torn write, garbage, a JSON non-object)
    corrupt = root / "train" / "corrupt"
    shutil.copytree(tiny, corrupt)
    lines = (corrupt / "metrics.jsonl").read_text().splitlines()
    (corrupt / "metrics.jsonl").write_text("\n".join(lines[:2] + BAD_METRICS_LINES + lines[2:]) + "\n")
    from dspy_rl.cli.sweep import main as sweep_main

    argv = ["sweep=ppo_like", "num_samples=8", "max_concurrent=2", "num_warmup=4", "seed=3"]
    assert sweep_main([*argv, f"run_dir={root / 'sweep' / 'like'}"]) == 0
    events = root / "events.jsonl"
    sample = (PACKAGE_DIR / "stream" / "data" / "sample_events.jsonl").read_text().splitlines()
    events.write_text("\n".join(sample[:300] + BAD_EVENTS + sample[300:]) + "\n")
    out = dspy_rl("stream", "ingest", f"stream.events_file={events}", f"store={root / 'traces.db'}").stdout
    (root.parent / "ingest.json").write_text(out[out.index("{") :])  # the ingester's counters, for the tests
    return root


class Dashboard:
    def __init__(self, runs: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dspy_rl", "dashboard", f"runs_dir={runs}", "port=0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, **(env or {})},
            start_new_session=True,
        )
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.close()
            raise RuntimeError(f"dashboard did not start: {line!r} {self.proc.stderr.read()[-3000:]}")
        self.port = int(m.group(1))
        self.runs = runs
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="session")
def dashboard(runs_dir) -> Iterator[Dashboard]:
    d = Dashboard(runs_dir, "poll_ms=300", "stats_interval_s=0.5")
    yield d
    d.close()


class LiveRun:
    """A real `dspy-rl train` with a budget far beyond the test, killed at the end."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dspy_rl",
                "train",
                *TINY,
                "total_env_steps=100000000",
                "checkpoint_every=1000000",
                f"run_dir={run_dir}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            start_new_session=True,
        )

    def wait_rows(self, n: int, timeout: float = 120) -> int:
        deadline = time.monotonic() + timeout
        path = self.run_dir / "metrics.jsonl"
        while time.monotonic() < deadline:
            rows = len(path.read_text().splitlines()) if path.exists() else 0
            if rows >= n:
                return rows
            assert self.proc.poll() is None, f"training exited early: {self.proc.stderr.read()[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"no {n} metrics rows within {timeout} s")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def ingest_counts(runs: Path) -> dict:
    return json.loads((runs.parent / "ingest.json").read_text())


def sweep_results(sweep_dir: Path) -> dict:
    return json.loads((sweep_dir / "results.json").read_text())


@pytest.fixture(scope="session")
def ppo_sweep_dir(private_tmp, ray_session) -> Path:
    """A runs directory holding a sweep of three real PPO training runs (`sweep=ppo_tiny`; minutes: slow tests)."""
    from dspy_rl.cli.sweep import main as sweep_main

    root = private_tmp / "dash-ppo" / "runs"
    argv = ["sweep=ppo_tiny", "num_samples=3", "max_concurrent=3", "num_warmup=2"]
    assert sweep_main([*argv, f"run_dir={root / 'sweep' / 'tiny'}"]) == 0
    return root


class AutoMode:
    """A real `dspy-rl stream auto` (paused, HTTP control on a free port, token) over a store of synthetic traces,
    its state dir at <runs>/auto where the dashboard finds it."""

    TOKEN = "auto-s3cret"

    def __init__(self, runs: Path) -> None:
        from dspy_rl.stream.synthetic import synthetic_spans
        from dspy_rl.traces.store import TraceStore

        runs.mkdir(parents=True, exist_ok=True)
        self.state_dir = runs / "auto"
        with TraceStore(runs / "traces.db") as store:
            store.insert_spans(list(synthetic_spans(20, seed=1, start_ts=time.time() - 3600)))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dspy_rl", "stream", "auto", f"store={runs / 'traces.db'}",
             "--state-dir", str(self.state_dir), "--hierarchical", "--min-groups", "1", "--period-sec", "3600",
             "--paused", "--port", "0", "train.batch_groups=4", "train.seed=1", "mine.hours=48"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**ENV, "DSPY_RL_AUTO_TOKEN": self.TOKEN},
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while not (self.state_dir / "control.json").is_file():
            assert self.proc.poll() is None, self.proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "stream auto did not write control.json"
            time.sleep(0.2)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def auto_mode(private_tmp) -> Iterator[tuple[AutoMode, Dashboard]]:
    runs = private_tmp / "dash-auto" / "runs"
    auto = AutoMode(runs)
    dash = None
    try:
        dash = Dashboard(runs, "poll_ms=300", env={"DSPY_RL_AUTO_TOKEN": AutoMode.TOKEN})
        yield auto, dash
    finally:
        if dash is not None:
            dash.close()
        auto.close()
