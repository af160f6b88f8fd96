"""``runtime.compile``: the learner's forward goes through torch.compile, state dicts stay plain, failures warn once.

The end-to-end run is ``slow``: compiling the three policy networks takes ~85 s on the shared 2-core VM.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from dspy_rl.learners.learner_group import LearnerGroup
from dspy_rl.learners.ppo import PPOHyper, PPOLearner
from dspy_rl.models.policy import MultiPolicy, load_numpy_state
from dspy_rl.trainer import Trainer, load_config
from dspy_rl.utils.checkpoint import latest_checkpoint, safe_torch_load
from dspy_rl.utils.compile import COMPILED_PREFIX, CompiledForward, compile_forward, plain_state_dict

from ._helpers import FAST, random_batch


def _learner(compile: bool) -> PPOLearner:
    torch.manual_seed(0)
    spec = MultiPolicy(obs_dim=12, num_tools=5, num_args=3, hidden=16)
    return PPOLearner(spec, PPOHyper(minibatch_size=64, epochs=1), torch.device("cpu"), 0, False, compile)


def _np_batch() -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in random_batch(128, 12, 5, 3, seed=1).items()}


def test_compiled_wrapper_keys_are_stripped_and_load_into_an_eager_policy():
    eager = MultiPolicy(obs_dim=12, num_tools=5, num_args=3, hidden=16)
    wrapped = torch.compile(eager)  # building the wrapper compiles nothing yet
    state = wrapped.state_dict()
    assert all(k.startswith(COMPILED_PREFIX) for k in state)
    fresh = MultiPolicy(obs_dim=12, num_tools=5, num_args=3, hidden=16)
    fresh.load_state_dict(plain_state_dict(state))
    for k, v in eager.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v)
    assert plain_state_dict(eager.state_dict()).keys() == eager.state_dict().keys()


def test_learner_with_compile_keeps_plain_state_and_loads_prefixed_checkpoints():
    learner = _learner(compile=True)
    assert isinstance(learner.forward_model, CompiledForward)
    state = learner.state_dict()
    assert not any(COMPILED_PREFIX in k for k in state["model"])
    # a checkpoint whose model keys carry the prefix (saved from a compiled module) loads too
    prefixed = {**state, "model": {COMPILED_PREFIX + k: v for k, v in state["model"].items()}}
    other = _learner(compile=False)
    other.load_state_dict(prefixed)
    for k, v in learner.model.state_dict().items():
        assert torch.equal(other.model.state_dict()[k], v)
    assert compile_forward(learner.model, False) is learner.model


def test_runner_weights_from_a_compiling_learner_group_are_plain():
    group = LearnerGroup(
        {"obs_dim": 12, "num_tools": 5, "num_args": 3, "hidden": 16}, PPOHyper(), 0, "cpu", 0, compile=True
    )
    assert isinstance(group.local.forward_model, CompiledForward)
    weights = group.weights()  # what EnvRunners receive
    assert weights and not any(COMPILED_PREFIX in k for k in weights)
    load_numpy_state(MultiPolicy(obs_dim=12, num_tools=5, num_args=3, hidden=16), weights)


def test_a_compile_failure_at_the_first_call_warns_once_and_trains_eagerly(caplog, monkeypatch):
    learner = _learner(compile=True)
    fwd = learner.forward_model
    assert isinstance(fwd, CompiledForward)

    def broken(*_a, **_k):
        raise RuntimeError("InvalidCxxCompiler: No working C compiler found\nsecond line")

    monkeypatch.setattr(fwd, "compiled", broken)
    reference = _learner(compile=False)
    with caplog.at_level(logging.WARNING, logger="dspy_rl.utils.compile"):
        m1 = learner.update(_np_batch())
        m2 = learner.update(_np_batch())
    warnings = [r for r in caplog.records if "runtime.compile" in r.getMessage()]
    assert len(warnings) == 1 and "No working C compiler" in warnings[0].getMessage()
    assert "second line" not in warnings[0].getMessage()
    assert not fwd.active
    r1, r2 = reference.update(_np_batch()), reference.update(_np_batch())
    assert m1["loss"] == pytest.approx(r1["loss"]) and m2["loss"] == pytest.approx(r2["loss"])


def test_a_failure_after_a_successful_compiled_call_is_raised():
    calls = []

    def flaky(x):
        calls.append(x)
        if len(calls) > 1:
            raise RuntimeError("boom")
        return x

    fwd = CompiledForward(torch.nn.Identity())
    fwd.compiled = flaky
    assert fwd(1) == 1
    with pytest.raises(RuntimeError, match="boom"):
        fwd(2)


@pytest.mark.slow
def test_train_with_runtime_compile_checkpoints_plain_weights(tmp_path: Path, caplog):
    run = tmp_path / "run"
    cfg = load_config([*FAST, "runtime.compile=true", f"total_env_steps={2 * 64 * 32}", f"run_dir={run}"])
    assert cfg.runtime.compile is True
    trainer = Trainer(cfg)
    with caplog.at_level(logging.WARNING, logger="dspy_rl.utils.compile"):
        result = trainer.run()
    assert result["env_steps"] >= 2 * 64 * 32
    assert not [r for r in caplog.records if "runtime.compile" in r.getMessage()], "compile fell back"
    state = safe_torch_load(latest_checkpoint(trainer.run_dir))
    model_state = state["learner"]["model"]
    assert not any(COMPILED_PREFIX in k for k in model_state)
    first, last = model_state["nets.A.actor.0.weight"], model_state["nets.A.actor.4.weight"]
    policy = MultiPolicy(
        obs_dim=first.shape[1],
        num_tools=last.shape[0],
        num_args=model_state["nets.C.actor.4.weight"].shape[0],
        hidden=first.shape[0],
    )
    policy.load_state_dict(model_state)  # strict: every key matches an uncompiled policy
