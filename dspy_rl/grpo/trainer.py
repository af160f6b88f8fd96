"""One GRPO update on a batch of scored text groups, with optimizer, StepLR schedule and a frozen reference.

The data source (offline groups or online samples) is the caller's business; this class only needs, per sample,
the prompt, the response token ids, the reward and the group id.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.learners.grpo import group_advantages, grpo_loss, kl_coef, no_signal_groups
from dspy_rl.utils.finite import raise_if_nonfinite


class GRPOTextTrainer:
    """Owns the policy's optimizer/scheduler and the frozen reference; ``update`` is one training step."""

    def __init__(self, policy: nn.Module, cfg: GRPOTrainConfig):
        self.policy = policy
        self.cfg = cfg
        self.reference: nn.Module | None = None
        if cfg.kl_target > 0:
            self.reference = copy.deepcopy(policy).eval()
            self.reference.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma
        )
        self.step = 0
        dev = policy.device
        self._autocast = (
            torch.autocast(device_type="cuda", dtype=torch.bfloat16) if dev.type == "cuda" else nullcontext()
        )

    def update(
        self,
        prompts: Sequence[str],
        responses: Sequence[Sequence[int]],
        rewards: Sequence[float],
        group_ids: Sequence[int],
    ) -> dict[str, Any]:
        """Advantages per group, then ``updates_per_batch`` optimizer steps on the GRPO loss; one scheduler step."""
        n = len(prompts)
        if not (n == len(responses) == len(rewards) == len(group_ids)) or n == 0:
            raise ValueError(
                f"need equal, non-zero numbers of prompts ({n}), responses ({len(responses)}), "
                f"rewards ({len(rewards)}) and group ids ({len(group_ids)})"
            )
        cfg = self.cfg
        r = torch.tensor(rewards, dtype=torch.float32)
        g = torch.tensor(group_ids, dtype=torch.long)
        nosig = no_signal_groups(r, g)
        n_groups = len(set(group_ids))
        beta = kl_coef(self.step, cfg.kl_target, cfg.kl_warmup)
        metrics: dict[str, Any] = {
            "reward_mean": float(r.mean()),
            "reward_std": float(r.std()) if n > 1 else 0.0,
            "groups": n_groups,
            "frac_no_signal": len(set(g[nosig].tolist())) / n_groups,
            "samples": n,
            "response_tokens": sum(len(x) for x in responses) / n,
            "beta": beta,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        keep = (~nosig).nonzero().squeeze(1).tolist() if cfg.drop_no_signal else list(range(n))
        if not keep:
            metrics.update(skipped=1, updates=0)
        else:
            t0 = time.perf_counter()
            adv = group_advantages(r, g, eps=cfg.adv_eps, scale_by_std=cfg.scale_adv_by_std)[keep]
            metrics.update(
                self._optimize([prompts[i] for i in keep], [responses[i] for i in keep], adv, beta)
            )
            metrics.update(skipped=0, updates=cfg.updates_per_batch, update_s=time.perf_counter() - t0)
        with warnings.catch_warnings():
            # A step whose groups all lack signal skips optimizer.step(); the LR schedule still follows the steps.
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            self.scheduler.step()
        self.step += 1
        return metrics

    def _optimize(
        self, prompts: list[str], responses: list[Sequence[int]], adv: torch.Tensor, beta: float
    ) -> dict[str, float]:
        cfg = self.cfg
        policy = self.policy
        # Scored in eval mode (dropout off), the mode the samples were drawn in; gradients flow all the same.
        policy.eval()
        batch = policy.encode(prompts, responses)
        adv = adv.to(policy.device)
        ref_logp = None
        if self.reference is not None:
            with torch.no_grad(), self._autocast:
                ref_logp, _ = self.reference.token_logprobs(batch)
        old_logp = None
        out_metrics: dict[str, float] = {}
        for _ in range(cfg.updates_per_batch):
            with self._autocast:
                logp, mask = policy.token_logprobs(batch)
            if old_logp is None:
                old_logp = logp.detach()  # the batch was sampled by the policy as it is now
            out = grpo_loss(
                logp,
                old_logp,
                adv,
                mask,
                ref_logp=ref_logp,
                clip_eps=cfg.clip_eps,
                clip_eps_high=cfg.clip_eps_high,
                beta=beta,
                aggregation=cfg.aggregation,  # type: ignore[arg-type]
            )
            self.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if cfg.max_grad_norm > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm))
            else:
                grad_norm = float(
                    torch.norm(
                        torch.stack([p.grad.norm() for p in policy.parameters() if p.grad is not None])
                    )
                )
            out_metrics = {**out.metrics(), "grad_norm": grad_norm}
            # before the optimizer step: the weights stay those of the last good step
            raise_if_nonfinite(
                out_metrics,
                f"step {self.step + 1} (text policy)",
                "the weights were not updated with them and the last checkpoint is kept",
            )
            self.optimizer.step()
        return out_metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "policy": self.policy.state_dict(),
            "reference": None if self.reference is None else self.reference.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        if self.reference is not None:
            if state.get("reference") is None:
                raise ValueError("the checkpoint has no reference model but kl_target > 0 now")
            self.reference.load_state_dict(state["reference"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
