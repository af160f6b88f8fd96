"""GRPO loss core: group-relative advantages, clipped ratio, k3 KL to a frozen reference, KL warm-up.

Pure torch functions over log-probabilities, shared by every GRPO data source:

* text groups (a prompt, G responses): ``logp`` is ``(N, T)`` per-token log-probs of the response tokens, ``mask``
  marks real response tokens (prompt and padding are 0);
* env groups (G rollouts replayed from one ``snapshot()``): ``logp`` is ``(N, T)`` per-step log-probs of the actions a
  policy took (``mask`` marks the steps that policy acted), or ``(M,)`` when steps are already flattened.

The objective (DeepSeekMath's GRPO, arXiv:2402.03300, eq. 3) per valid token/step ``t`` of sample ``i``::

    ratio   = exp(logp - old_logp)
    pg      = -min(ratio * A_i, clip(ratio, 1 - eps, 1 + eps_high) * A_i)
    kl      = exp(ref_logp - logp) - (ref_logp - logp) - 1          # k3 estimator of KL(pi || pi_ref), >= 0
    loss_t  = pg + beta * kl

with ``A_i = (r_i - mean(r_group)) / (std(r_group) + eps)`` (unbiased sample std). ``beta`` follows
:func:`kl_coef`: a linear warm-up from 0 to ``kl_target``. There is no critic and no value loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "GRPOLossOutput",
    "group_advantages",
    "grpo_loss",
    "kl_coef",
    "kl_k3",
    "masked_mean",
    "no_signal_groups",
]


def _group_index(group_ids: Tensor) -> tuple[Tensor, int]:
    """Dense 0..G-1 index of each sample's group, and the number of groups."""
    _, inverse = torch.unique(group_ids, return_inverse=True)
    return inverse, int(inverse.max().item()) + 1 if inverse.numel() else 0


def no_signal_groups(rewards: Tensor, group_ids: Tensor) -> Tensor:
    """Per-sample bool: the sample's group has fewer than two members or all-equal rewards (zero advantage)."""
    rewards = rewards.detach().to(torch.float64)
    idx, n_groups = _group_index(group_ids)
    size = torch.zeros(n_groups, dtype=torch.long, device=rewards.device).index_add_(
        0, idx, torch.ones_like(idx)
    )
    rmax = torch.full((n_groups,), -torch.inf, dtype=rewards.dtype, device=rewards.device)
    rmin = torch.full((n_groups,), torch.inf, dtype=rewards.dtype, device=rewards.device)
    rmax = rmax.scatter_reduce(0, idx, rewards, reduce="amax")
    rmin = rmin.scatter_reduce(0, idx, rewards, reduce="amin")
    return ((size < 2) | (rmax == rmin))[idx]


def group_advantages(
    rewards: Tensor, group_ids: Tensor, *, eps: float = 1e-6, scale_by_std: bool = True
) -> Tensor:
    """Group-standardized advantages ``(r - mean_g) / (std_g + eps)``, one per sample.

    Args:
        rewards: ``(N,)`` scalar reward per sample (a response, or an env rollout's return).
        group_ids: ``(N,)`` integer id of the group each sample belongs to (any values; need not be sorted).
        eps: added to the group std, so near-constant groups do not blow up.
        scale_by_std: divide by the std (GRPO); ``False`` keeps only the mean baseline (Dr. GRPO).

    Returns:
        ``(N,)`` float32 advantages. Samples of groups with fewer than two members or all-equal rewards get exactly 0.
    """
    if rewards.ndim != 1 or group_ids.shape != rewards.shape:
        raise ValueError(
            f"rewards and group_ids must be 1-D of equal length, got {tuple(rewards.shape)} and "
            f"{tuple(group_ids.shape)}"
        )
    if rewards.numel() == 0:
        return torch.zeros(0, dtype=torch.float32, device=rewards.device)
    r = rewards.detach().to(torch.float64)
    idx, n_groups = _group_index(group_ids)
    size = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, idx, torch.ones_like(r))
    mean = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, idx, r) / size
    centered = r - mean[idx]
    sq = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(0, idx, centered * centered)
    std = torch.sqrt(sq / (size - 1).clamp(min=1))
    adv = centered / (std[idx] + eps) if scale_by_std else centered
    # Exact zeros for groups without signal (floating-point means of equal values are not always exact).
    adv = torch.where(no_signal_groups(r, group_ids), torch.zeros_like(adv), adv)
    return adv.to(torch.float32)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Schulman's low-variance, unbiased, non-negative estimator ``k3`` of ``KL(pi || pi_ref)`` per sample.

    With ``x = ref_logp - logp`` (log of ``pi_ref / pi`` at the sampled token), ``k3 = exp(x) - x - 1``. It is 0
    exactly when the two log-probs are equal. (http://joschu.net/blog/kl-approx.html)
    """
    x = ref_logp - logp
    return torch.expm1(x) - x


def kl_coef(step: int, kl_target: float, kl_warmup: int) -> float:
    """KL coefficient ``beta`` at optimizer ``step``: linear from 0 (step 0) to ``kl_target`` (step >= kl_warmup)."""
    if kl_target < 0 or kl_warmup < 0:
        raise ValueError(f"kl_target and kl_warmup must be >= 0, got {kl_target} and {kl_warmup}")
    if kl_warmup == 0:
        return float(kl_target)
    return float(kl_target) * min(1.0, max(0, step) / kl_warmup)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over entries where ``mask`` is true (over ``dim``, or all); 0 where nothing is valid."""
    m = mask.to(x.dtype)
    if dim is None:
        return (x * m).sum() / m.sum().clamp(min=1)
    return (x * m).sum(dim) / m.sum(dim).clamp(min=1)


@dataclass
class GRPOLossOutput:
    """The scalar loss to backpropagate and detached diagnostics (means over valid tokens/steps)."""

    loss: Tensor
    pg_loss: Tensor
    kl: Tensor
    clip_frac: Tensor
    ratio_mean: Tensor

    def metric_tensors(self) -> dict[str, Tensor]:
        """Diagnostics as detached 0-d tensors on the loss's device (no host sync; sum them, then convert once)."""
        return {
            "loss": self.loss.detach(),
            "pg_loss": self.pg_loss.detach(),
            "kl": self.kl.detach(),
            "clip_frac": self.clip_frac.detach(),
            "ratio_mean": self.ratio_mean.detach(),
        }

    def metrics(self) -> dict[str, float]:
        """Diagnostics as plain floats, for logging."""
        return {k: float(v) for k, v in self.metric_tensors().items()}


def _check_inputs(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor | None,
    ref_logp: Tensor | None,
    clip_eps: float,
    clip_eps_high: float | None,
    aggregation: str,
) -> None:
    """Raise ValueError unless :func:`grpo_loss`'s arguments have consistent shapes and valid settings."""
    if logp.shape != old_logp.shape:
        raise ValueError(
            f"logp {tuple(logp.shape)} and old_logp {tuple(old_logp.shape)} must have the same shape"
        )
    if ref_logp is not None and ref_logp.shape != logp.shape:
        raise ValueError(f"ref_logp {tuple(ref_logp.shape)} must have the shape of logp {tuple(logp.shape)}")
    if logp.ndim not in (1, 2):
        raise ValueError(f"logp must be (N,) or (N, T), got shape {tuple(logp.shape)}")
    if advantages.shape != logp.shape[:1]:
        raise ValueError(f"advantages must be (N,)={tuple(logp.shape[:1])}, got {tuple(advantages.shape)}")
    if mask is not None and mask.shape != logp.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of logp {tuple(logp.shape)}")
    if clip_eps <= 0 or (clip_eps_high is not None and clip_eps_high <= 0):
        raise ValueError(f"clip ranges must be > 0, got clip_eps={clip_eps}, clip_eps_high={clip_eps_high}")
    if aggregation not in ("sequence", "token"):
        raise ValueError(f"aggregation must be 'sequence' or 'token', got {aggregation!r}")


def grpo_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    *,
    ref_logp: Tensor | None = None,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    beta: float = 0.0,
    aggregation: Literal["sequence", "token"] = "sequence",
) -> GRPOLossOutput:
    """The GRPO objective (to minimize) for one minibatch.

    Args:
        logp: ``(N, T)`` or ``(N,)`` log-probs of the taken tokens/actions under the policy being trained (with grad).
        old_logp: same shape; log-probs under the policy that sampled the data (no grad). When each batch gets one
            optimizer step, pass ``logp.detach()``: the ratio is then 1 and only its gradient matters.
        advantages: ``(N,)`` per-sample advantages (:func:`group_advantages`), broadcast over ``T``.
        mask: same shape as ``logp``; true/1 for tokens/steps that count. ``None``: all count.
        ref_logp: same shape; log-probs under the frozen reference. ``None`` (or ``beta == 0``): no KL term.
        clip_eps: lower clip range, ratio is clipped to ``[1 - clip_eps, 1 + clip_eps_high]``.
        clip_eps_high: upper clip range (DAPO's clip-higher); ``None`` means ``clip_eps``.
        beta: the coefficient multiplying the KL term (see :func:`kl_coef` for the warm-up schedule).
        aggregation: ``"sequence"`` averages tokens within each sample, then samples (GRPO paper);
            ``"token"`` averages over all valid tokens of the batch (DAPO), so long samples weigh more.

    Returns:
        :class:`GRPOLossOutput`; ``clip_frac`` is the fraction of valid tokens where the clipped branch is the active
        one (their policy-gradient is zero), ``kl`` the mean k3 estimate (computed even when ``beta`` is 0).
    """
    _check_inputs(logp, old_logp, advantages, mask, ref_logp, clip_eps, clip_eps_high, aggregation)

    if logp.ndim == 1:  # one action per sample: a (N, 1) layout keeps a single code path
        logp, old_logp = logp[:, None], old_logp[:, None]
        ref_logp = None if ref_logp is None else ref_logp[:, None]
        mask = None if mask is None else mask[:, None]
    valid = torch.ones_like(logp, dtype=torch.bool) if mask is None else mask.bool()
    high = clip_eps if clip_eps_high is None else clip_eps_high
    adv = advantages.to(logp.dtype)[:, None]

    ratio = torch.exp(logp - old_logp.detach())
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + high) * adv
    pg = -torch.minimum(unclipped, clipped)
    per_token = pg
    if ref_logp is not None:
        kl = kl_k3(logp, ref_logp.detach())
        if beta != 0.0:
            per_token = per_token + beta * kl
    else:
        kl = torch.zeros_like(logp)

    def reduce(x: Tensor) -> Tensor:
        if aggregation == "token":
            return masked_mean(x, valid)
        has_tokens = valid.any(dim=1)
        per_sample = masked_mean(x, valid, dim=1)
        return masked_mean(per_sample, has_tokens)

    loss = reduce(per_token)
    with torch.no_grad():
        clip_active = ((adv > 0) & (ratio > 1.0 + high)) | ((adv < 0) & (ratio < 1.0 - clip_eps))
        return GRPOLossOutput(
            loss=loss,
            pg_loss=reduce(pg.detach()),
            kl=masked_mean(kl.detach(), valid),
            clip_frac=masked_mean(clip_active.to(logp.dtype), valid),
            ratio_mean=masked_mean(ratio.detach(), valid),
        )
