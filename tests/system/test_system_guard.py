"""Capacity guard: the figures, the refusal line, `dspy-rl system guard`, and the guard before train / grpo train."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError
from dspy_rl.system.guard import CapacityError, GuardConfig, check_capacity, enforce
from dspy_rl.system.stats import system_stats, usage_metrics


def _meminfo_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / (1 << 20)
    raise AssertionError("no MemAvailable")


def test_system_stats_match_the_machine(tmp_path: Path):
    import shutil

    stats = system_stats(tmp_path)
    assert set(stats) >= {"cpu_percent", "ram_used_gb", "ram_total_gb", "disk_free_gb", "gpu_util_percent",
                          "vram_used_mb", "vram_total_mb"}  # fmt: skip
    assert 0.0 <= stats["cpu_percent"] <= 100.0
    assert 0 < stats["ram_used_gb"] < stats["ram_total_gb"]
    assert abs(stats["disk_free_gb"] - shutil.disk_usage(tmp_path).free / (1 << 30)) < 1.0
    assert all(k.startswith("sys/") and isinstance(v, float) for k, v in usage_metrics(tmp_path).items())


def test_check_passes_and_fails_on_real_figures(tmp_path: Path):
    ok = check_capacity(0.001, 0.001, 0, tmp_path)
    assert ok.ok and not ok.failed
    avail = _meminfo_available_gb()
    bad = check_capacity(1e9, avail * 100, 0, tmp_path)
    assert not bad.ok
    assert {c.name for c in bad.failed} == {"disk_free", "ram_available"}
    line = bad.refusal("cycle")
    assert "\n" not in line and "guard.min_free_gb" in line and "guard.min_ram_gb" in line
    assert "1e+09 GB required" in line and "disk_free" in line
    shape = bad.to_json()
    assert shape["ok"] is False
    assert set(shape["checks"][0]) == {"name", "value", "required", "unit", "ok", "setting", "detail"}
    with pytest.raises(CapacityError, match="guard.min_free_gb"):
        enforce(GuardConfig(min_free_gb=1e9), tmp_path)
    enforce(GuardConfig(min_free_gb=1e9, enabled=False), tmp_path)  # disabled: figures only


def test_vram_required_without_gpu_fails_and_says_so(tmp_path: Path):
    import torch

    report = check_capacity(0, 0, 1, tmp_path)
    vram = report.checks[-1]
    if torch.cuda.is_available():
        assert vram.value is not None and vram.ok
    else:
        assert not vram.ok and vram.value is None and "no CUDA device" in vram.describe()


def test_negative_threshold_is_a_config_error():
    with pytest.raises(ConfigError, match="guard.min_ram_gb"):
        GuardConfig(min_ram_gb=-1)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dspy_rl", *args], capture_output=True, text=True, timeout=120
    )


def test_system_guard_command_json_and_exit_codes(tmp_path: Path):
    ok = _cli("system", "guard", "--json", f"path={tmp_path}", "--min-free-gb", "0.001")
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["ok"] is True and [c["name"] for c in report["checks"]] == ["disk_free", "ram_available",
                                                                              "vram_free"]  # fmt: skip
    refused = _cli("system", "guard", f"path={tmp_path}", "guard.min_free_gb=1e9")
    assert refused.returncode == 3
    assert "FAIL  disk_free" in refused.stdout and "guard.min_free_gb" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_train_and_grpo_train_are_refused_before_starting(tmp_path: Path, capsys):
    rc = cli_main(["train", f"run_dir={tmp_path / 'ppo'}", "guard.min_free_gb=1e9"])
    assert rc == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("dspy-rl train: capacity guard refused the train run: disk_free")
    assert "guard.min_free_gb" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "ppo").exists()  # refused before the run directory is made
    rc = cli_main(
        ["grpo", "train", "dataset=x.jsonl", f"run_dir={tmp_path / 'g'}", f"guard.min_ram_gb={1e6}"]
    )
    assert rc == 3
    err = capsys.readouterr().err.strip()
    assert "capacity guard refused the grpo train run: ram_available" in err and "guard.min_ram_gb" in err


def test_grpo_run_records_machine_use_per_step(tmp_path: Path):
    data = tmp_path / "groups.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": f"p{i}",
                    "candidates": [{"text": "a", "reward": 1.0}, {"text": "b", "reward": 0.0}],
                }
            )
            for i in range(4)
        )
        + "\n"
    )
    run = tmp_path / "run"
    rc = cli_main(["grpo", "train", f"dataset={data}", "steps=3", "model=bow", f"run_dir={run}", "logging.log_every=1",
                   "logging.progress_bar=false", "torch_threads=1"])  # fmt: skip
    assert rc == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert train_rows and all("sys/cpu_percent" in r and "sys/disk_free_gb" in r and "sys/ram_used_gb" in r
                              for r in train_rows)  # fmt: skip
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert "grpo/sys/ram_used_gb" in acc.Tags()["scalars"]


def test_train_records_machine_use_per_iteration(tmp_path: Path, ray_session):
    from tests.train._helpers import FAST

    run = tmp_path / "ppo"
    rc = cli_main(["train", *FAST, "total_env_steps=4096", f"run_dir={run}", "runtime.num_cpus=1"])
    assert rc == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) >= 2
    assert all("sys/cpu_percent" in r and "sys/ram_used_gb" in r and "sys/disk_free_gb" in r for r in rows)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert {"sys/cpu_percent", "sys/ram_used_gb", "sys/disk_free_gb"} <= set(acc.Tags()["scalars"])
