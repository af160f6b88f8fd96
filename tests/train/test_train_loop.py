"""`dspy-rl train` end to end: config validation, learning, logging outputs, checkpoints, resume, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError
from dspy_rl.trainer import load_config, run_training
from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint

from ._helpers import BACKEND, FAST


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("algo.lr=-1", "algo.lr"),
        ("algo.clip=3", "algo.clip"),
        ("env.backend=java", "env.backend"),
        ("runtime.num_env_runners=-2", "runtime.num_env_runners"),
        ("total_env_steps=0", "total_env_steps"),
        ("runtime.device=tpu", "runtime.device"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}=.*expected"):
        load_config([override])


def test_type_errors_and_unknown_keys_are_config_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="algo.epochs"):
        load_config(["algo.epochs=many"])
    with pytest.raises(ConfigError, match="no_such_key"):
        load_config(["algo.no_such_key=1"])
    assert cli_main(["train", "algo.lr=0"]) == 2
    assert "algo.lr=0" in capsys.readouterr().err


def test_flag_aliases_and_groups_compose() -> None:
    cfg = load_config(
        ["--suite", "hard", "--steps", "5000", "env=easy", "runtime=single_gpu", "algo.lr=3e-4"]
    )
    assert cfg.env.suite == "hard"  # the alias is applied after the group choice, as an override of its key
    assert cfg.total_env_steps == 5000 and cfg.algo.lr == pytest.approx(3e-4)
    assert cfg.runtime.device == "cuda" and not cfg.runtime.mixed_precision


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when no GPU is present")
def test_forcing_cuda_without_gpu_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        run_training([*FAST, "runtime.device=cuda", f"run_dir={tmp_path}"])


def test_learns_clearly_better_than_random(tmp_path: Path) -> None:
    """A small budget in the driver: random-level success (~0.1) must rise well above it."""
    total = 2048 * 64
    result = run_training(
        [*FAST, f"total_env_steps={total}", "seed=1", f"run_dir={tmp_path}", "logging.plot=true"]
    )
    rows = _rows(tmp_path)
    assert rows[0]["iter_success_rate"] < 0.3
    assert result["success_rate"] >= 0.6, result
    assert result["env_steps"] == total
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "learning_curve.png").stat().st_size > 10_000
    assert any((tmp_path / "tb").iterdir())
    ckpt = load_checkpoint(latest_checkpoint(tmp_path))
    assert ckpt["env_steps"] == total and set(ckpt["learner"]["optimizers"]) == {"A", "B", "C"}
    for p in "ABC":
        assert f"{p}/entropy" in rows[-1] and f"{p}/pg_loss" in rows[-1]


def test_trained_checkpoint_evaluates_through_the_eval_cli(tmp_path: Path) -> None:
    from dspy_rl import evaluation as eval_cli

    run_training([*FAST, "total_env_steps=8192", f"run_dir={tmp_path}"])
    cfg = eval_cli.load_config(
        ["policy=checkpoint", f"checkpoint={tmp_path}", "episodes=64", f"backend={BACKEND}"]
    )
    result = eval_cli.evaluate(cfg)
    assert result.episodes == 64 and 0.0 <= result.success_rate <= 1.0 and result.mean_length > 0
    with pytest.raises(ConfigError, match="does not exist"):
        eval_cli.evaluate(eval_cli.load_config(["policy=checkpoint", f"checkpoint={tmp_path / 'missing'}"]))


@pytest.mark.parametrize(("async_sampling", "lag"), [(True, 1), (False, 0)])
def test_async_sampling_overlaps_one_batch_and_stops_at_the_exact_total(
    ray_session, tmp_path: Path, async_sampling: bool, lag: int
) -> None:
    """With async sampling the runner samples batch k+1 (with the weights before update k) while the learner
    trains on batch k: every batch after the first is one update behind. Synchronous sampling has no lag."""
    rows: list[dict] = []
    result = run_training(
        [
            *FAST,
            "runtime.num_env_runners=1",
            f"runtime.async_sampling={str(async_sampling).lower()}",
            "total_env_steps=14000",  # not a multiple of the 2048-step batch: the last one is partial
            f"run_dir={tmp_path}",
        ],
        report=rows.append,
    )
    assert result["env_steps"] == 14000
    assert [r["policy_lag"] for r in rows] == [0] + [lag] * (len(rows) - 1)
    assert [r["env_steps"] for r in rows][-2:] == [12288, 14000]


def test_runner_actors_and_ddp_learners(ray_session, tmp_path: Path) -> None:
    """Two EnvRunner actors and two DDP learner actors (gloo); the ranks stay identical."""
    from dspy_rl.learners.learner_group import LearnerGroup
    from dspy_rl.learners.ppo import PPOHyper

    result = run_training(
        [
            *FAST,
            "runtime.num_env_runners=2",
            "runtime.num_learners=2",
            "total_env_steps=16384",
            f"run_dir={tmp_path}",
        ]
    )
    assert result["env_steps"] == 16384 and result["num_env_runners"] == 2

    group = LearnerGroup(
        {"obs_dim": 5, "num_tools": 3, "num_args": 2, "hidden": 8},
        PPOHyper(minibatch_size=32),
        num_learners=2,
        device="cpu",
        seed=0,
    )
    try:
        import numpy as np

        rng = np.random.default_rng(0)
        n = 128
        batch = {
            "obs": rng.normal(size=(n, 5)).astype(np.float32),
            "tool_mask": np.ones((n, 3), bool),
            "arg_mask": np.ones((n, 2), bool),
            "phase": rng.integers(0, 2, n).astype(np.uint8),
            "tools": rng.integers(0, 3, n),
            "args": rng.integers(0, 2, n),
            "arg_active": np.ones(n, bool),
            "logp_tool": np.full(n, -1.1, np.float32),
            "logp_arg": np.full(n, -0.7, np.float32),
            "adv_tool": rng.normal(size=n).astype(np.float32),
            "ret_tool": rng.normal(size=n).astype(np.float32),
            "adv_arg": rng.normal(size=n).astype(np.float32),
            "ret_arg": rng.normal(size=n).astype(np.float32),
        }
        before = group.weights()
        group.update(batch)
        w0, w1 = (ray_session.get(a.weights.remote()) for a in group.actors)
        assert all(np.array_equal(w0[k], w1[k]) for k in w0)  # DDP kept the ranks in sync
        assert any(not np.array_equal(before[k], w0[k]) for k in w0)  # and they trained
    finally:
        group.shutdown()


def test_cuda_learner_actors_need_one_whole_gpu_each() -> None:
    """K CUDA DDP learners need K GPUs in the Ray cluster: auto falls back to CPU (gloo), an explicit cuda is a
    ConfigError naming the numbers. Before, the actors without a GPU stayed pending and the rendezvous hung."""
    from dspy_rl.learners.learner_group import learner_gpu_device

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert learner_gpu_device(cpu, "cpu", 2, 0) == cpu
    assert learner_gpu_device(cuda, "cuda", 1, 1.0) == cuda
    assert learner_gpu_device(cuda, "cuda", 2, 2.0) == cuda
    assert learner_gpu_device(cuda, "auto", 2, 1.0) == cpu
    with pytest.raises(ConfigError, match=r"num_learners=2 .* needs 2 GPUs .* the Ray cluster has 1;"):
        learner_gpu_device(cuda, "cuda", 2, 1.0)
    with pytest.raises(ConfigError, match="the Ray cluster has 0"):  # Ray detected no GPU at all
        learner_gpu_device(cuda, "cuda:0", 1, 0)


def test_killed_env_runner_is_replaced(ray_session, tmp_path: Path) -> None:
    killed = []

    def report(metrics: dict) -> None:
        if metrics["iteration"] == 2 and not killed:
            actors = [
                a
                for a in ray_session.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("dspy_rl_env_runner:")
            ]
            handle = ray_session.get_actor(actors[0]["name"], namespace=actors[0]["namespace"])
            ray_session.kill(handle, no_restart=True)
            killed.append(actors[0]["name"])

    result = run_training(
        [*FAST, "runtime.num_env_runners=2", "total_env_steps=28672", f"run_dir={tmp_path}"], report=report
    )
    assert killed
    assert result["env_steps"] == 28672 and result["runner_replacements"] == 1


def _start_train(run_dir: Path, total: int, *extra: str) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "dspy_rl",
        "train",
        *FAST,
        f"total_env_steps={total}",
        "checkpoint_every=2",
        f"run_dir={run_dir}",
        *extra,
    ]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for_checkpoint(
    run_dir: Path, proc: subprocess.Popen, min_iteration: int, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is not None and int(ckpt.stem.split("_")[1]) >= min_iteration:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    raise AssertionError("no checkpoint appeared")


def test_sigkill_then_resume_reaches_exact_total(tmp_path: Path) -> None:
    total = 2048 * 60
    proc = _start_train(tmp_path, total, "algo.epochs=8")
    _wait_for_checkpoint(tmp_path, proc, min_iteration=4)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    ckpt = load_checkpoint(latest_checkpoint(tmp_path))
    resumed_from = ckpt["env_steps"]
    assert 0 < resumed_from < total
    assert ckpt["iteration"] * 2048 == resumed_from

    result = run_training([*FAST, f"total_env_steps={total}", f"resume={tmp_path}", "checkpoint_every=2"])
    assert result["env_steps"] == total
    steps = [r["env_steps"] for r in _rows(tmp_path)]
    assert steps == sorted(set(steps)), "metrics rows after the checkpoint were not replaced"
    assert steps[-1] == total
    assert resumed_from + 2048 in steps  # the counter continued from the checkpoint
    final = load_checkpoint(latest_checkpoint(tmp_path))
    assert final["env_steps"] == total and final["iteration"] == total // 2048


def test_sigterm_checkpoints_and_stops(tmp_path: Path) -> None:
    proc = _start_train(tmp_path, 10_000_000, "checkpoint_every=1000")
    _wait_for_metrics = time.monotonic() + 120
    while not (tmp_path / "metrics.jsonl").exists() or len(_rows(tmp_path)) < 2:
        assert time.monotonic() < _wait_for_metrics and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "interrupted by SIGTERM" in err
    ckpt = load_checkpoint(latest_checkpoint(tmp_path))
    assert ckpt["env_steps"] == _rows(tmp_path)[-1]["env_steps"]


def test_wandb_logs_offline_without_an_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run_training([*FAST, "total_env_steps=4096", "logging.wandb=true", f"run_dir={tmp_path}"])
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs and any(runs[0].glob("*.wandb")), "no offline W&B run was written"


def test_adaptive_runner_pool_grows_when_learners_starve_and_shrinks_when_rollouts_queue(
    tmp_path: Path,
) -> None:
    from dspy_rl.trainer import Trainer

    cfg = load_config(
        [
            *FAST,
            "runtime.num_env_runners=2",
            "runtime.adaptive_runners=true",
            "runtime.max_env_runners=4",
            f"run_dir={tmp_path}",
        ]
    )
    target = Trainer(cfg)._make_runner_controller(2)
    grown = target(2.0, 0.2, 2)  # the learner waited on rollouts for 90% of the iteration
    assert grown == 3
    assert target(2.0, 0.2, grown) == 4
    assert target(2.0, 0.2, 4) == 4  # clamped at runtime.max_env_runners
    shrunk = target(0.1, 1.0, 4)  # finished rollouts waited 10x their sampling time for the learner
    assert shrunk < 4
    assert target(0.1, 1.0, 1) == 1  # never below one runner


def test_hung_env_runner_is_killed_replaced_and_resampled(ray_session, tmp_path: Path) -> None:
    """A runner whose process is frozen (SIGSTOP: a real hang, no test hook) is killed after
    runtime.runner_timeout_s, replaced, and its rollout sampled again; the run ends at the exact step count."""
    import psutil

    stopped: list[int] = []

    def report(metrics: dict) -> None:
        if metrics["iteration"] == 2 and not stopped:
            actor = next(
                a
                for a in ray_session.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("dspy_rl_env_runner:")
            )
            handle = ray_session.get_actor(actor["name"], namespace=actor["namespace"])
            proc = psutil.Process(ray_session.get(handle.__ray_call__.remote(lambda _self: os.getpid())))
            proc.suspend()  # SIGSTOP: the actor stays alive for Ray but never answers
            stopped.append(proc.pid)

    try:
        result = run_training(
            [
                *FAST,
                "runtime.num_env_runners=2",
                "runtime.runner_timeout_s=15",
                "total_env_steps=28672",
                f"run_dir={tmp_path}",
            ],
            report=report,
        )
        assert stopped
        # >= 1: on a loaded machine a healthy runner can also pass the 15 s limit and be replaced; still exact steps
        assert result["env_steps"] == 28672 and result["runner_replacements"] >= 1
        try:  # Ray kills it asynchronously
            gone, _ = psutil.wait_procs([psutil.Process(stopped[0])], timeout=120)
            assert gone, "the hung runner's process was not killed"
        except psutil.NoSuchProcess:
            pass  # already gone
    finally:
        for pid in stopped:  # never leave a stopped process behind, whatever happened
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass


def test_runner_timeout_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"runtime.runner_timeout_s=-1.*expected"):
        load_config(["runtime.runner_timeout_s=-1"])
