"""The background checkpoint writer: snapshots are immune to later updates, the last write is waited for, and a
failed write is raised rather than lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dspy_rl.utils.checkpoint import CheckpointWriter, latest_checkpoint, load_checkpoint


def test_written_checkpoint_is_the_state_at_save_time_not_after_later_updates(tmp_path: Path) -> None:
    weights = torch.zeros(256, 256)
    optimizer_state = {
        "state": {0: {"exp_avg": torch.ones(8)}},
        "param_groups": [{"lr": 1e-3, "params": [0]}],
    }
    writer = CheckpointWriter(tmp_path, keep=2)
    for it in range(1, 4):
        writer.save(it, {"iteration": it, "learner": {"model": {"w": weights}, "opt": optimizer_state}})
        weights.add_(1.0)  # the next "update" runs while the write may still be in flight
        optimizer_state["state"][0]["exp_avg"].mul_(2.0)
    writer.wait()
    latest = load_checkpoint(latest_checkpoint(tmp_path))
    assert latest["iteration"] == 3
    assert torch.equal(latest["learner"]["model"]["w"], torch.full((256, 256), 2.0))
    assert torch.equal(latest["learner"]["opt"]["state"][0]["exp_avg"], torch.full((8,), 4.0))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("ckpt_*.pt")) == [
        "ckpt_0000002.pt",
        "ckpt_0000003.pt",
    ]


def test_failed_write_is_raised_by_wait_and_by_the_next_save(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run directory should be")
    writer = CheckpointWriter(blocker)
    writer.save(1, {"iteration": 1})
    with pytest.raises(RuntimeError, match="writing a checkpoint under .*run failed"):
        writer.wait()
    writer.save(2, {"iteration": 2})
    with pytest.raises(RuntimeError, match="failed"):
        writer.save(3, {"iteration": 3})
    writer.wait(raise_error=False)  # the way out of a run that is already failing: no second error
