"""Policy models: env policy networks, the Hugging Face causal-LM text policy (``hf``), a bag-of-words LM (``bow``)."""

from __future__ import annotations

import torch


def response_logprobs(
    logits: torch.Tensor, response_ids: torch.Tensor, mask: torch.Tensor, eos_id: int
) -> torch.Tensor:
    """Log-probs of ``response_ids`` under ``logits`` ``(B, T, V)``; 0 where ``mask`` is false.

    Padding targets are replaced by eos (a token the policy can emit) so every gathered entry is finite.
    """
    targets = torch.where(mask, response_ids, eos_id)
    logp = torch.gather(logits, -1, targets[..., None]).squeeze(-1) - torch.logsumexp(logits, -1)
    return torch.where(mask, logp, 0.0)
