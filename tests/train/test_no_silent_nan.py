"""No silent NaN: non-finite float settings fail before Ray starts; a loss term that goes non-finite mid-run stops
PPO, env GRPO and text GRPO at once, naming the iteration, the policy and the term, with the last good checkpoint
kept on disk (weights finite) and nothing logged for the bad iteration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dspy_rl.grpo.trainer as text_grpo_trainer
import dspy_rl.learners.grpo_env as grpo_env
import dspy_rl.learners.ppo as ppo
from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.trainer import Trainer, load_config
from dspy_rl.utils.checkpoint import latest_checkpoint
from dspy_rl.utils.checkpoint import load_checkpoint as load_train_checkpoint
from dspy_rl.utils.finite import NonFiniteError

from ._helpers import FAST

PER_ITER = 64 * 32


@pytest.mark.parametrize(
    "override",
    ["algo.ent_coef=inf", "algo.max_grad_norm=inf", "algo.lr=nan", "algo.vf_coef=-inf", "target_success=nan"],
)
def test_non_finite_settings_fail_before_ray_with_the_key(override: str) -> None:
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^{key}=(nan|inf|-inf) is not allowed"):
        load_config([override])


def test_non_finite_text_grpo_and_serve_settings_fail_too() -> None:
    with pytest.raises(ConfigError, match="clip_eps=inf is not allowed"):
        to_object(compose("grpo", ["clip_eps=inf"]), GRPOTrainConfig)
    from dspy_rl.cli.serve import _config

    with pytest.raises(ConfigError, match="deadline_s=nan is not allowed"):
        _config(["deadline_s=nan"])


def _poison(monkeypatch: pytest.MonkeyPatch, module, name: str, term: str, when) -> None:
    """Fault injection: while ``when()`` holds, ``module.name``'s ``term`` (first policy column) is NaN."""
    real = getattr(module, name)

    def poisoned(*args, **kwargs):
        out = real(*args, **kwargs)
        if when():
            if isinstance(out, dict):
                t = out[term].clone()
                t[..., 0] = float("nan")
                out[term] = t
            else:
                setattr(out, term, getattr(out, term) * float("nan"))
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(module, name, poisoned)


def _count_updates(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts learner updates (iterations) so the poison starts at a chosen one."""
    count = {"n": 0}
    real = ppo.PPOLearner.update

    def update(self, batch):
        count["n"] += 1
        return real(self, batch)

    monkeypatch.setattr(ppo.PPOLearner, "update", update)
    return count


@pytest.mark.parametrize(
    ("algo", "module", "name", "term", "policy_term"),
    [
        ("ppo", ppo, "ppo_terms", "entropy", "policy A: entropy=nan"),
        ("grpo", grpo_env, "grpo_loss", "pg_loss", "pg_loss=nan"),  # all three streams poisoned
    ],
)
def test_nan_loss_stops_the_env_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, algo: str, module, name: str, term: str, policy_term: str
) -> None:
    extra = ["algo=grpo", "algo.group_size=8"] if algo == "grpo" else []
    cfg = load_config(
        [*FAST, *extra, "total_env_steps=100000000", "checkpoint_every=1", f"run_dir={tmp_path}"]
    )
    trainer = Trainer(cfg)
    updates = _count_updates(monkeypatch)
    _poison(monkeypatch, module, name, term, when=lambda: updates["n"] >= 3)  # iterations 1, 2 are good
    with pytest.raises(NonFiniteError) as err:
        trainer.run()
    msg = str(err.value)
    assert "\n" not in msg
    assert "iteration 3 " in msg and "policy A: " in msg and policy_term in msg, msg
    assert "ckpt_0000002.pt is kept" in msg
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.name == "ckpt_0000002.pt"
    state = load_train_checkpoint(ckpt)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["learner"]["model"].values())
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2]  # nothing of the bad iteration was logged


def _groups(path: Path) -> Path:
    rows = [
        {"prompt": f"goal {i} .", "candidates": [{"text": g, "reward": 1.0}, {"text": b, "reward": 0.0}]}
        for i, (g, b) in enumerate([("cat README.md", "cd src"), ("ls docs", "grep TODO")] * 2)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_nan_loss_stops_text_grpo_before_the_optimizer_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    calls = {"n": 0}

    def when() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # one loss per step (updates_per_batch=1): steps 1-3 are good

    _poison(monkeypatch, text_grpo_trainer, "grpo_loss", "pg_loss", when)
    argv = ["grpo", "train", f"dataset={_groups(tmp_path / 'g.jsonl')}", "steps=10", "model=bow", f"run_dir={run}",
            "ckpt_every=1", "batch_groups=2", "logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false"]  # fmt: skip
    assert cli_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stopped: non-finite training values at step 4" in err
    assert "pg_loss=nan" in err and "loss=nan" in err
    ckpt = latest_checkpoint(run)
    assert ckpt is not None and ckpt.name == "ckpt_0000003.pt"
    state = load_train_checkpoint(ckpt)
    assert state["trainer"]["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["trainer"]["policy"].values())
