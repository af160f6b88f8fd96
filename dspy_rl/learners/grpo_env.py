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

from dspy_rl.learners.grpo import grpo_loss, kl_coef
from dspy_rl.learners.ppo import MODEL_INPUTS, STEP_KEYS, LearnerHyper, PPOLearner
from dspy_rl.models.policy import MultiPolicy
from dspy_rl.utils.compile import plain_state_dict

GRPO_BATCH_KEYS = (*STEP_KEYS, "adv")  # one group-relative advantage per step, no critic targets


@dataclass
class GRPOHyper(LearnerHyper):
    kl_target: float = 0.01
    kl_warmup: int = 10


class GRPOEnvLearner(PPOLearner):
    """:class:`~dspy_rl.learners.ppo.PPOLearner`'s loop with the GRPO objective: no critic is trained."""

    keys = GRPO_BATCH_KEYS

    def __init__(
        self,
        model: MultiPolicy,
        hp: GRPOHyper,
        device: torch.device,
        seed: int = 0,
        mixed_precision: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__(model, hp, device, seed, mixed_precision, compile)
        self.reference = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.updates = 0
        self.beta = 0.0

    def _trained_params(self, policy: str) -> Any:
        return self.model.nets[policy].actor.parameters()

    def _prepare(self, data: dict[str, torch.Tensor]) -> None:
        self.beta = kl_coef(self.updates, self.hp.kl_target, self.hp.kl_warmup)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        metrics = super().update(batch)
        self.updates += 1
        return {**metrics, "kl_beta": self.beta}

    def _losses(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        args = [mb[k] for k in MODEL_INPUTS]
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
        metrics: dict[str, torch.Tensor] = {}
        for p, (logp, old, ref_logp, mask) in streams.items():
            res = grpo_loss(
                logp.float(),
                old,
                mb["adv"],
                mask,
                ref_logp=ref_logp.float(),
                clip_eps=self.hp.clip,
                beta=self.beta,
                aggregation="token",
            )
            loss = loss + res.loss
            # tensors: PPOLearner.update sums them and syncs with the host once per update, not 15x per minibatch
            metrics.update({f"{p}/{k}": v for k, v in res.metric_tensors().items()})
        return loss, metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "updates": self.updates,
            "reference": {k: v.cpu() for k, v in self.reference.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.reference.load_state_dict(plain_state_dict(state["reference"]))
        self.updates = state["updates"]
