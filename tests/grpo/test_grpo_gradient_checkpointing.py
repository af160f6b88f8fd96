"""``gradient_checkpointing=true`` for Hugging Face text policies: really recomputes, same losses as without."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.policy import enable_gradient_checkpointing
from dspy_rl.grpo.run import train
from dspy_rl.grpo.trainer import GRPOTextTrainer
from dspy_rl.models.bow import BagOfWordsLM, WordVocab
from dspy_rl.models.hf import HFCausalLMPolicy, build_tiny_causal_lm
from dspy_rl.utils.run_logger import read_metrics

FAST = ["logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false", "logging.plot=false"]
TEXTS = ["goal 0 .", "goal 1 .", "cat README.md", "cd src", "ls docs", "grep TODO", "pytest"]


def _cfg(*overrides: str) -> GRPOTrainConfig:
    return to_object(compose("grpo", [*FAST, *overrides]), GRPOTrainConfig)


def _dataset(path: Path) -> Path:
    rows = [
        {
            "prompt": f"goal {i % 2} .",
            "candidates": [
                {"text": good, "reward": 1.0},
                {"text": bad, "reward": 0.0},
                {"text": "pytest", "reward": 0.25},
            ],
        }
        for i, (good, bad) in enumerate([("cat README.md", "cd src"), ("ls docs", "grep TODO")] * 3)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(
        tmp_path_factory.mktemp("tiny"), TEXTS, n_layer=2, n_embd=32, n_head=2, seed=3
    )


def _step(tiny_dir: Path, checkpointing: bool) -> tuple[list[dict], dict[str, torch.Tensor], int]:
    """Two GRPO updates of a fresh tiny GPT-2; returns the metrics, the final weights and the block calls."""
    policy = HFCausalLMPolicy.from_pretrained(tiny_dir, local_files_only=True)
    if checkpointing:
        enable_gradient_checkpointing(policy)
        assert policy.gradient_checkpointing and policy.model.config.use_cache is False
    cfg = _cfg(
        "dataset=unused.jsonl", "model=tiny-gpt2", "kl_target=0.04", "kl_warmup=0", "updates_per_batch=2"
    )
    trainer = GRPOTextTrainer(policy, cfg)
    # Count the first block's MLP forwards (module hooks do not fire in transformers' recompute, so wrap forward),
    # after the trainer deep-copied its reference: only the trained policy's calls count.
    calls = []
    mlp = policy.model.transformer.h[0].mlp
    eager_forward = mlp.forward

    def counted(*args, **kwargs):
        calls.append(1)
        return eager_forward(*args, **kwargs)

    mlp.forward = counted
    prompts = ["goal 0 ."] * 3 + ["goal 1 ."] * 3
    responses = [policy.tokenize_response(t) for t in ["cat README.md", "cd src", "pytest"] * 2]
    metrics = [trainer.update(prompts, responses, [1.0, 0.0, 0.25, 0.0, 1.0, 0.5], [0, 0, 0, 1, 1, 1])]
    metrics.append(trainer.update(prompts, responses, [1.0, 0.0, 0.25, 0.0, 1.0, 0.5], [0, 0, 0, 1, 1, 1]))
    return metrics, {k: v.detach().clone() for k, v in policy.state_dict().items()}, len(calls)


def test_checkpointing_recomputes_blocks_and_gives_the_same_losses_and_weights(tiny_dir: Path):
    m_off, w_off, calls_off = _step(tiny_dir, checkpointing=False)
    m_on, w_on, calls_on = _step(tiny_dir, checkpointing=True)
    # 2 steps x 2 updates: the block (its MLP) runs once per forward without checkpointing, and again in each backward with
    # it (the recomputation), although GRPO scores in eval mode
    assert calls_off == 4 and calls_on == 8
    for a, b in zip(m_off, m_on, strict=True):
        for key in ("loss", "kl", "grad_norm"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
    for k, v in w_off.items():
        torch.testing.assert_close(w_on[k], v, rtol=1e-5, atol=1e-6)


def test_grpo_train_run_with_gradient_checkpointing_matches_the_run_without(tmp_path: Path):
    data = _dataset(tmp_path / "groups.jsonl")
    common = [f"dataset={data}", "model=tiny-gpt2", "tiny_embd=32", "tiny_layers=2", "steps=3", "batch_groups=2",
              "logging.log_every=1", "seed=5"]  # fmt: skip
    off = train(_cfg(*common, f"run_dir={tmp_path / 'off'}"))
    on = train(_cfg(*common, "gradient_checkpointing=true", f"run_dir={tmp_path / 'on'}"))
    rows_off, rows_on = read_metrics(Path(off.run_dir)), read_metrics(Path(on.run_dir))
    assert len(rows_off) == len(rows_on) == 3
    for a, b in zip(rows_off, rows_on, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-7)
        assert b["reward_mean"] == a["reward_mean"]


def test_gradient_checkpointing_needs_a_hugging_face_policy(tmp_path: Path):
    with pytest.raises(ConfigError, match="gradient_checkpointing"):
        _cfg("dataset=x.jsonl", "model=bow", "gradient_checkpointing=true")
    with pytest.raises(ConfigError, match="needs a Hugging Face policy"):
        enable_gradient_checkpointing(BagOfWordsLM(WordVocab.build(TEXTS), max_positions=4))
