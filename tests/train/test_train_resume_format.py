"""Checkpoint format versions: a version-1 checkpoint (per-tensor Adam states, written before each policy's
parameters became one flat tensor) is converted on resume; a newer version than this code knows is refused."""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from dspy_rl.config import ConfigError
from dspy_rl.learners.grpo_env import GRPOEnvLearner, GRPOHyper
from dspy_rl.learners.ppo import PPOHyper, PPOLearner
from dspy_rl.models.policy import POLICIES, MultiPolicy
from dspy_rl.trainer import Trainer, load_config, run_training
from dspy_rl.utils.checkpoint import (
    FORMAT_VERSION,
    flatten_adam_state,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)

from ._helpers import FAST, random_batch

SPEC = {"obs_dim": 6, "num_tools": 5, "num_args": 3, "hidden": 16}


def _per_tensor(cls: type[PPOLearner]) -> type[PPOLearner]:
    """``cls`` as the learner was before the flat parameter (675bed5^): one fused Adam per policy over its
    weight tensors, and ``clip_grad_norm_`` per policy; its state dict is a version-1 learner state."""

    class PerTensor(cls):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.optimizers = {
                p: torch.optim.Adam(self._trained_params(p), lr=self.hp.lr, eps=1e-5, fused=True)
                for p in POLICIES
            }

        def _step(self, mb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            loss, metrics = self._losses(mb)
            for opt in self.optimizers.values():
                opt.zero_grad(set_to_none=True)
            loss.backward()
            metrics["grad_norm"] = torch.stack(
                [
                    nn.utils.clip_grad_norm_(self._trained_params(p), self.hp.max_grad_norm, foreach=True)
                    for p in POLICIES
                ]
            )
            for opt in self.optimizers.values():
                opt.step()
            metrics["loss"] = loss.detach()
            return metrics

    return PerTensor


def _batch(n: int, seed: int, grpo: bool) -> dict[str, np.ndarray]:
    raw = random_batch(n, SPEC["obs_dim"], SPEC["num_tools"], SPEC["num_args"], seed=seed, grpo=grpo)
    return {k: v.numpy() for k, v in raw.items()}


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_version_1_optimizer_state_converts_to_the_flat_one_and_the_next_update_matches(algo: str) -> None:
    """Train a per-tensor learner (the old code) and a flat one from the same weights on the same batches; the
    old learner's checkpoint, converted, must hold the flat learner's Adam state, and a learner resumed from it
    must make the same next update as the learner that was flat all along."""
    grpo = algo == "grpo"
    cls: type[PPOLearner] = GRPOEnvLearner if grpo else PPOLearner
    hp = (GRPOHyper if grpo else PPOHyper)(lr=1e-2, epochs=2, minibatch_size=128, max_grad_norm=0.05)
    torch.manual_seed(0)
    model = MultiPolicy(**SPEC)
    old = _per_tensor(cls)(copy.deepcopy(model), hp, torch.device("cpu"), seed=3)
    flat = cls(copy.deepcopy(model), hp, torch.device("cpu"), seed=3)
    for seed in range(3):  # 3 updates x 2 epochs x 2 minibatches: 12 Adam steps
        old.update(_batch(256, seed, grpo))
        flat.update(_batch(256, seed, grpo))

    v1 = {
        "iteration": 3,
        "env_steps": 768,
        "config": {"algo": {"name": algo}},
        "model_spec": SPEC,
        "learner": old.state_dict(),
    }
    assert all(len(o["param_groups"][0]["params"]) > 1 for o in v1["learner"]["optimizers"].values())
    v1_copy = copy.deepcopy(v1)
    v2 = upgrade_checkpoint(v1)
    assert v2["format_version"] == FORMAT_VERSION == 2
    for p in POLICIES:  # the input is left as it was
        for i, s in v1["learner"]["optimizers"][p]["state"].items():
            assert all(
                torch.equal(t, v1_copy["learner"]["optimizers"][p]["state"][i][k]) for k, t in s.items()
            )

    torch.manual_seed(1)  # different initial weights: everything must come from the checkpoint
    resumed = cls(MultiPolicy(**SPEC), hp, torch.device("cpu"), seed=99)
    resumed.load_state_dict(v2["learner"])
    want = flat.state_dict()["optimizers"]
    for p in POLICIES:
        got = resumed.optimizers[p].state_dict()
        assert len(got["param_groups"]) == 1 and got["param_groups"][0]["params"] == [0]
        assert got["param_groups"][0]["lr"] == hp.lr and got["param_groups"][0]["eps"] == 1e-5
        assert float(got["state"][0]["step"]) == float(want[p]["state"][0]["step"]) == 12
        for key in ("exp_avg", "exp_avg_sq"):
            assert got["state"][0][key].shape == resumed.flat[p].shape
            torch.testing.assert_close(got["state"][0][key], want[p]["state"][0][key], rtol=1e-4, atol=1e-9)
        # Element by element, each weight's moments sit where that weight sits in the flat parameter.
        offset = 0
        for q, old_q in zip(resumed.params[p], old._trained_params(p), strict=True):
            piece = got["state"][0]["exp_avg"][offset : offset + q.numel()].view_as(q)
            assert torch.equal(piece, old.optimizers[p].state[old_q]["exp_avg"])
            offset += q.numel()

    # The next update: the converted learner and the flat-all-along one move the weights the same way, and the
    # optimizer state matters (a fresh Adam on the same weights moves them differently).
    fresh = cls(MultiPolicy(**SPEC), hp, torch.device("cpu"), seed=99)
    fresh.model.load_state_dict(v2["learner"]["model"])
    fresh.generator.set_state(v2["learner"]["generator"])
    batch = _batch(256, 10, grpo)
    for learner in (resumed, flat, fresh):
        learner.update(batch)
    for name, want_w in flat.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], want_w, rtol=1e-4, atol=1e-6, msg=name)
    assert any(
        not torch.allclose(fresh.model.state_dict()[k], v, rtol=1e-3, atol=1e-5)
        for k, v in flat.model.state_dict().items()
    )


def _v1_adam(flat_state: dict[str, Any], shapes: list[torch.Size]) -> dict[str, Any]:
    """A flat Adam state split back into the per-tensor state the old code had: the flat parameter is the plain
    concatenation of the tensors, so this is the exact inverse of the conversion."""
    (state,) = flat_state["state"].values()
    sizes = [s.numel() for s in shapes]
    per: dict[int, dict[str, Any]] = {i: {"step": state["step"].clone()} for i in range(len(shapes))}
    for key in ("exp_avg", "exp_avg_sq"):
        for i, (piece, shape) in enumerate(zip(state[key].split(sizes), shapes, strict=True)):
            per[i][key] = piece.reshape(shape).clone()
    (group,) = flat_state["param_groups"]
    return {"state": per, "param_groups": [{**group, "params": list(range(len(shapes)))}]}


def _as_version_1(state: dict[str, Any]) -> dict[str, Any]:
    shapes_model = MultiPolicy(**state["model_spec"])  # the parameter order, from the module itself
    old = {k: v for k, v in state.items() if k != "format_version"}
    old["learner"] = {
        **state["learner"],
        "optimizers": {
            p: _v1_adam(o, [q.shape for q in shapes_model.nets[p].parameters()])
            for p, o in state["learner"]["optimizers"].items()
        },
    }
    return old


def test_resume_of_a_version_1_run_converts_it_and_continues_like_the_version_2_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Resume the same run from its checkpoint as written (version 2) and rewritten in the old per-tensor
    layout (version 1, no ``format_version``): both continue to the larger total and end with the same weights."""
    v2_run, v1_run = tmp_path / "v2", tmp_path / "v1"
    run_training([*FAST, "total_env_steps=4096", f"run_dir={v2_run}"])
    shutil.copytree(v2_run, v1_run)
    ckpt = latest_checkpoint(v1_run)
    state = load_checkpoint(ckpt)
    assert state["format_version"] == FORMAT_VERSION and state["env_steps"] == 4096
    step_before = float(state["learner"]["optimizers"]["A"]["state"][0]["step"])
    assert step_before > 0
    torch.save(_as_version_1(state), ckpt)
    assert "format_version" not in load_checkpoint(ckpt)
    n_tensors = len(list(MultiPolicy(**state["model_spec"]).nets["A"].parameters()))  # actor + critic: 12
    assert (
        len(load_checkpoint(ckpt)["learner"]["optimizers"]["A"]["param_groups"][0]["params"]) == n_tensors > 1
    )

    results = {}
    for run in (v2_run, v1_run):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="dspy_rl.trainer.trainer"):
            results[run] = run_training([*FAST, "total_env_steps=8192", f"resume={run}"])
        converted = "converted checkpoint format version 1 to 2" in caplog.text
        assert converted == (run == v1_run)
    finals = {}
    for run, result in results.items():
        assert result["env_steps"] == 8192
        final = load_checkpoint(latest_checkpoint(run))
        assert final["format_version"] == FORMAT_VERSION and final["env_steps"] == 8192
        opt = final["learner"]["optimizers"]["A"]
        assert opt["param_groups"][0]["params"] == [0]
        assert (
            float(opt["state"][0]["step"]) == 2 * step_before
        )  # Adam's step count went on from the checkpoint
        finals[run] = final
    for k, v in finals[v2_run]["learner"]["model"].items():
        torch.testing.assert_close(finals[v1_run]["learner"]["model"][k], v, rtol=0, atol=0, msg=k)


def test_a_checkpoint_from_a_newer_dspy_rl_is_refused_with_the_version(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 10, {"format_version": FORMAT_VERSION + 1, "iteration": 10, "env_steps": 81920})
    with pytest.raises(ConfigError, match=f"format version {FORMAT_VERSION + 1}.*upgrade dspy-rl"):
        Trainer(load_config([f"resume={tmp_path}", "runtime.num_env_runners=0"]))


def _adam_state(shapes: list[tuple[int, ...]], steps: list[float]) -> dict[str, Any]:
    return {
        "state": {
            i: {"step": torch.tensor(s), "exp_avg": torch.ones(shape), "exp_avg_sq": torch.ones(shape)}
            for i, (shape, s) in enumerate(zip(shapes, steps, strict=True))
        },
        "param_groups": [{"lr": 5e-3, "eps": 1e-5, "params": list(range(len(shapes)))}],
    }


def test_version_1_states_that_cannot_be_converted_say_why() -> None:
    shapes = [(4, 3), (4,)]
    flat = flatten_adam_state(_adam_state(shapes, [7.0, 7.0]), shapes)
    assert flat["state"][0]["exp_avg"].shape == (16,) and float(flat["state"][0]["step"]) == 7.0
    assert flat["param_groups"] == [{"lr": 5e-3, "eps": 1e-5, "params": [0]}]
    with pytest.raises(ConfigError, match=r"different numbers of times \(\[6\.0, 7\.0\]\).*start a new run"):
        flatten_adam_state(_adam_state(shapes, [7.0, 6.0]), shapes)
    with pytest.raises(ConfigError, match=r"shape \(3, 4\), but the parameter is \(4, 3\)"):
        flatten_adam_state(_adam_state([(3, 4), (4,)], [7.0, 7.0]), shapes)
    with pytest.raises(ConfigError, match="holds 2 tensors but the policy trains 3"):
        flatten_adam_state(_adam_state(shapes, [7.0, 7.0]), [*shapes, (2,)])


def test_resume_of_an_unconvertible_version_1_checkpoint_is_a_config_error(tmp_path: Path) -> None:
    model = MultiPolicy(**SPEC)
    shapes = [tuple(q.shape) for q in model.nets["A"].parameters()]
    opt = _adam_state(shapes, [5.0] * (len(shapes) - 1) + [4.0])
    save_checkpoint(
        tmp_path,
        10,
        {
            "iteration": 10,
            "env_steps": 81920,
            "config": {"algo": {"name": "ppo"}},
            "learner": {"model": model.state_dict(), "optimizers": dict.fromkeys(POLICIES, opt)},
        },
    )
    with pytest.raises(ConfigError, match=r"ckpt_0000010.pt, policy A: cannot convert .*different numbers"):
        Trainer(load_config([f"resume={tmp_path}", "runtime.num_env_runners=0"]))
