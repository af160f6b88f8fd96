"""Offline text GRPO reports what the policy learned: ranking of held-out groups' candidates before and after."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.dataset import load_groups
from dspy_rl.grpo.heldout import split_groups
from dspy_rl.grpo.run import train
from dspy_rl.utils.run_logger import read_metrics

FAST = ["logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false"]
GOOD = ["pytest -x then git commit", "make test and git commit"]
BAD = ["rm -rf build", "curl example.com", "sleep 10", "cat /dev/null"]


def _dataset(path: Path, n: int = 40) -> Path:
    rng = random.Random(0)
    rows = []
    for i in range(n):
        cands = [{"text": rng.choice(GOOD), "reward": 1.0}] + [
            {"text": t, "reward": rng.choice([0.0, 0.2])} for t in rng.sample(BAD, 3)
        ]
        rng.shuffle(cands)
        rows.append({"prompt": f"fix issue {i} in module m{i % 7}", "candidates": cands, "meta": {}})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    groups, _ = load_groups(_dataset(tmp_path / "d.jsonl"))
    train_a, held_a = split_groups(groups, 0.25, seed=3)
    train_b, held_b = split_groups(groups, 0.25, seed=3)
    assert [g.prompt for g in held_a] == [g.prompt for g in held_b] and len(held_a) == 10
    assert not {g.prompt for g in train_a} & {g.prompt for g in held_a}
    with pytest.raises(ValueError, match="at least 2 groups"):
        split_groups(groups[:1], 0.5, 0)


def test_heldout_ranking_improves_with_training(tmp_path: Path) -> None:
    data = _dataset(tmp_path / "d.jsonl")
    cfg = to_object(
        compose(
            "grpo",
            [*FAST, f"dataset={data}", "model=bow", "steps=40", "lr=0.05", "heldout_fraction=0.25",
             f"run_dir={tmp_path / 'run'}", "logging.log_every=1"],
        ),
        GRPOTrainConfig,
    )  # fmt: skip
    summary = train(cfg)
    before, after = summary.heldout_before, summary.heldout_after
    assert before is not None and after is not None and after["heldout_groups"] == 10
    assert after["heldout_top1"] >= 0.9 > before["heldout_top1"]
    assert after["heldout_policy_reward"] > before["heldout_policy_reward"] + 0.3
    assert before["heldout_mean_reward"] <= after["heldout_policy_reward"] <= after["heldout_best_reward"]
    rows = [r for r in read_metrics(tmp_path / "run") if "heldout/heldout_top1" in r]
    assert [r["step"] for r in rows] == [0, 40]
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["heldout_after"]["heldout_top1"] == after["heldout_top1"]


def test_bad_heldout_fraction_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="heldout_fraction"):
        to_object(
            compose("grpo", [*FAST, f"dataset={tmp_path / 'd.jsonl'}", "heldout_fraction=1.5"]),
            GRPOTrainConfig,
        )
