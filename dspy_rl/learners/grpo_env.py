"""GRPO on ToolEnv: G rollouts replayed from one ``snapshot()``, group-relative advantages, no critic.

Each group starts G envs from the same snapshot (same task, target and RNG stream), so returns differ only by
the policies' choices: ``A_i = (R_i - mean_g R) / std_g R`` is a low-variance, critic-free advantage. Every step of
rollout ``i`` carries ``A_i``; the tool policy that acted (A first, B later) and the argument policy C (on steps
whose tool takes an argument) are trained with the shared GRPO objective of :mod:`dspy_rl.learners.grpo`, with a KL
penalty to a frozen reference copy of the initial policies whose weight warms up from 0 to ``kl_target``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dspy_rl.learners.grpo import grpo_loss, kl_coef
from dspy_rl.models.policy import POLICIES, MultiPolicy

GRPO_BATCH_KEYS = (
    "obs",
    "tool_mask",
    "arg_mask",
    "phase",
    "tools",
    "args",
    "arg_active",
    "logp_tool",
    "logp_arg",
    "adv",
)


@dataclass
class GRPOHyper:
    lr: float = 1e-3
    clip: float = 0.2
    epochs: int = 4
    minibatch_size: int = 2048
    max_grad_norm: float = 1.0
    kl_target: float = 0.01
    kl_warmup: int = 10

    @classmethod
    def from_config(cls, algo: Any) -> GRPOHyper:
        return cls(**{k: getattr(algo, k) for k in cls.__dataclass_fields__})


class GRPOEnvLearner:
    """Same surface as :class:`~dspy_rl.learners.ppo.PPOLearner` (update, wrap, state_dict), GRPO inside."""

    def __init__(
        self,
        model: MultiPolicy,
        hp: GRPOHyper,
        device: torch.device,
        seed: int = 0,
        mixed_precision: bool = False,
    ) -> None:
        self.model = model.to(device)
        self.reference = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.forward_model: nn.Module = self.model
        self.hp, self.device = hp, device
        self.amp = mixed_precision and device.type == "cuda"
        self.optimizers = {
            p: torch.optim.Adam(self.model.nets[p].actor.parameters(), lr=hp.lr, eps=1e-5) for p in POLICIES
        }
        self.generator = torch.Generator().manual_seed(seed)
        self.updates = 0

    def wrap(self, wrapper: nn.Module) -> None:
        self.forward_model = wrapper

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        data = {k: torch.from_numpy(np.ascontiguousarray(batch[k])).to(self.device) for k in GRPO_BATCH_KEYS}
        n = data["obs"].shape[0]
        beta = kl_coef(self.updates, self.hp.kl_target, self.hp.kl_warmup)
        sums: dict[str, float] = {}
        count = 0
        mb = min(self.hp.minibatch_size, n)
        for _ in range(self.hp.epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            for start in range(0, n - mb + 1, mb):
                stats = self._step({k: v[perm[start : start + mb]] for k, v in data.items()}, beta)
                for k, v in stats.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
        self.updates += 1
        return {**{k: v / max(count, 1) for k, v in sums.items()}, "kl_beta": beta}

    def _step(self, mb: dict[str, torch.Tensor], beta: float) -> dict[str, float]:
        args = (mb["obs"], mb["tool_mask"], mb["arg_mask"], mb["phase"], mb["tools"], mb["args"])
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.forward_model(*args)
            with torch.no_grad():
                ref = self.reference(*args)
        first = mb["phase"] == 0
        streams = {
            "A": (out.logp_tool, mb["logp_tool"], ref.logp_tool, first),
            "B": (out.logp_tool, mb["logp_tool"], ref.logp_tool, ~first),
            "C": (out.logp_arg, mb["logp_arg"], ref.logp_arg, mb["arg_active"]),
        }
        loss = torch.zeros((), device=self.device)
        metrics: dict[str, float] = {}
        for p, (logp, old, ref_logp, mask) in streams.items():
            res = grpo_loss(
                logp.float(),
                old,
                mb["adv"],
                mask,
                ref_logp=ref_logp.float(),
                clip_eps=self.hp.clip,
                beta=beta,
                aggregation="token",
            )
            loss = loss + res.loss
            metrics.update({f"{p}/{k}": v for k, v in res.metrics().items()})
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for p in POLICIES:
            metrics[f"{p}/grad_norm"] = float(
                nn.utils.clip_grad_norm_(self.model.nets[p].actor.parameters(), self.hp.max_grad_norm)
            )
            self.optimizers[p].step()
        metrics["loss"] = float(loss.detach())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
            "reference": {k: v.cpu() for k, v in self.reference.state_dict().items()},
            "optimizers": {p: o.state_dict() for p, o in self.optimizers.items()},
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.reference.load_state_dict(state.get("reference", state["model"]))
        for p, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][p])
        self.generator.set_state(state["generator"])
        self.updates = state.get("updates", 0)
