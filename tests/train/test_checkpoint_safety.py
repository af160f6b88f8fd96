"""Checkpoints cannot run code and survive corruption: a malicious pickle is refused without running, a damaged
latest checkpoint (truncated, empty, flipped bytes, malicious) is skipped with a warning and the run resumes from
the previous one to the exact step count; a torn last line of metrics.jsonl is dropped with a warning."""

from __future__ import annotations

import json
import logging
import os
import pathlib
from pathlib import Path

import pytest
import torch

from dspy_rl.trainer import Trainer, load_config
from dspy_rl.utils.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_latest_checkpoint,
    safe_torch_load,
    save_checkpoint,
)

from ._helpers import FAST

PER_ITER = 64 * 32  # env.num_envs * algo.rollout_len in FAST


class _Touch:
    """Unpickling this object creates a file (what a hostile checkpoint would do: run code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (self.marker,))


def _malicious(path: Path, marker: Path) -> None:
    torch.save({"format_version": 2, "learner": {"model": {}}, "payload": _Touch(marker)}, path)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "ckpt_0000001.pt"
    _malicious(bad, marker)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "not tensors or plain data" in msg
    assert not marker.exists()
    # the text GRPO loader and the plain one refuse it the same way
    with pytest.raises(CheckpointError):
        safe_torch_load(bad)
    assert not marker.exists()


def _damage(path: Path, how: str, marker: Path) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero_bytes":
        path.write_bytes(b"")
    elif how == "flipped_byte":  # inside the tensor data, which torch.load alone would not notice
        raw = bytearray(data)
        pos = data.index(b"data/0") + 200
        raw[pos] ^= 0x5A
        path.write_bytes(bytes(raw))
    elif how == "malicious":
        _malicious(path, marker)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "zero_bytes", "flipped_byte", "malicious"])
def test_damaged_latest_checkpoint_resumes_from_the_previous_to_the_exact_total(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    marker = tmp_path / "pwned"
    first = Trainer(
        load_config([*FAST, f"total_env_steps={3 * PER_ITER}", "checkpoint_every=1", f"run_dir={run}"])
    )
    assert first.run()["env_steps"] == 3 * PER_ITER
    latest = latest_checkpoint(run)
    assert latest is not None and latest.name == "ckpt_0000003.pt"
    _damage(latest, how, marker)
    # the torn line a kill during a metrics write leaves
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"env_steps": 99999, "succ')

    total = 5 * PER_ITER
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(
            load_config([*FAST, f"total_env_steps={total}", f"resume={run}", "checkpoint_every=1"])
        )
    assert trainer.resume_state is not None and trainer.resume_state["env_steps"] == 2 * PER_ITER
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("ckpt_0000003.pt" in w and "cannot be loaded" in w for w in warnings), warnings
    assert any("resuming from ckpt_0000002.pt" in w for w in warnings), warnings
    with caplog.at_level(logging.WARNING):
        result = trainer.run()
    assert result["env_steps"] == total
    assert not marker.exists()
    assert any("torn last line" in r.getMessage() for r in caplog.records)
    steps = [json.loads(x)["env_steps"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [PER_ITER * i for i in range(1, 6)]  # rows after the fallback checkpoint were replaced
    final = load_checkpoint(latest_checkpoint(run))
    assert final["env_steps"] == total and final["iteration"] == 5


def test_no_loadable_checkpoint_is_one_line_naming_each_file(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(load_config([*FAST, f"total_env_steps={PER_ITER}", f"run_dir={run}"])).run()
    for p in (run / "checkpoints").glob("ckpt_*.pt"):
        p.write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointError) as err:
        Trainer(load_config([*FAST, f"resume={run}"]))
    assert "\n" not in str(err.value) and "ckpt_0000001.pt" in str(err.value)


def test_text_grpo_state_falls_back_to_the_previous_checkpoint(tmp_path: Path, caplog) -> None:
    """Text GRPO runs write the same checkpoints/ckpt_<step>.pt (plain dicts without ``learner``)."""
    save_checkpoint(tmp_path, 1, {"trainer": {"step": 1}, "w": torch.ones(3)})
    save_checkpoint(tmp_path, 2, {"trainer": {"step": 2}, "w": torch.ones(3)})
    assert load_latest_checkpoint(tmp_path)[1]["trainer"]["step"] == 2
    marker = tmp_path / "pwned"
    _malicious(latest_checkpoint(tmp_path), marker)
    with caplog.at_level(logging.WARNING):
        found, state = load_latest_checkpoint(tmp_path)
    assert found.name == "ckpt_0000001.pt" and state["trainer"]["step"] == 1
    assert not marker.exists()
    assert any("ckpt_0000002.pt" in r.getMessage() for r in caplog.records)
    os.truncate(found, 10)
    with pytest.raises(CheckpointError, match="no checkpoint of"):
        load_latest_checkpoint(tmp_path)
