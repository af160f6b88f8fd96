"""What offline text GRPO learned, measured on held-out groups.

Offline GRPO trains on fixed candidates, so the batch mean reward it logs is the dataset's and cannot move. The
honest signal is how the policy now *ranks* candidates it never trained on: for each held-out group, the policy
scores every candidate by its sequence log-probability given the prompt, and

* ``heldout_top1``: the share of groups where the policy's most likely candidate has the group's best reward
  (ties in reward count as a hit; chance level is reported as ``heldout_top1_chance``);
* ``heldout_policy_reward``: the reward of the candidates weighted by the policy's probabilities renormalized over
  the group (``softmax`` of the sequence log-probabilities), averaged over groups; it lies between the groups'
  mean reward (``heldout_mean_reward``, a uniform policy) and their best reward (``heldout_best_reward``).

Measured before the first update and after the last one (``heldout/*`` rows in metrics.jsonl, ``heldout_before``
and ``heldout_after`` in summary.json).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from dspy_rl.grpo.dataset import Group


def split_groups(groups: Sequence[Group], fraction: float, seed: int) -> tuple[list[Group], list[Group]]:
    """(train, held-out): a seeded ``fraction`` of the groups held out (at least one on each side)."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(groups) < 2:
        raise ValueError(f"need at least 2 groups to hold some out, got {len(groups)}")
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    k = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    held = set(order[:k])
    return [g for i, g in enumerate(groups) if i not in held], [g for i, g in enumerate(groups) if i in held]


@torch.no_grad()
def ranking_metrics(
    policy: torch.nn.Module, groups: Sequence[Group], batch_groups: int = 64
) -> dict[str, float]:
    """The metrics of the module docstring for ``policy`` on ``groups``."""
    was_training = policy.training
    policy.eval()
    top1 = chance = weighted = best = mean = 0.0
    try:
        for start in range(0, len(groups), batch_groups):
            chunk = groups[start : start + batch_groups]
            prompts = [g.prompt for g in chunk for _ in g.candidates]
            responses = [policy.tokenize_response(c.text) for g in chunk for c in g.candidates]
            logp, mask = policy.token_logprobs(policy.encode(prompts, responses))
            seq = (logp.float() * mask).sum(dim=-1).cpu()
            pos = 0
            for g in chunk:
                k = len(g.candidates)
                s = seq[pos : pos + k]
                r = torch.tensor([c.reward for c in g.candidates], dtype=torch.float64)
                pos += k
                is_best = r >= r.max() - 1e-9
                top1 += float(is_best[int(s.argmax())])
                chance += float(is_best.double().mean())
                weighted += float((torch.softmax(s.double(), dim=0) * r).sum())
                best += float(r.max())
                mean += float(r.mean())
    finally:
        policy.train(was_training)
    n = max(1, len(groups))
    return {
        "heldout_top1": top1 / n,
        "heldout_top1_chance": chance / n,
        "heldout_policy_reward": weighted / n,
        "heldout_mean_reward": mean / n,
        "heldout_best_reward": best / n,
        "heldout_groups": float(len(groups)),
    }
