"""Online text GRPO data: the policy samples G completions per prompt and a reward function scores them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from dspy_rl.grpo.rewards import RewardFn, checked_rewards


@dataclass
class SampledGroups:
    """``len(prompts) * group_size`` samples, group-major: sample ``i`` belongs to group ``i // group_size``."""

    prompts: list[str]
    responses: list[list[int]]
    completions: list[str]
    rewards: list[float]
    group_ids: list[int]


def sample_groups(
    policy: torch.nn.Module,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    group_size: int,
    max_new_tokens: int,
    generator: torch.Generator | None = None,
) -> SampledGroups:
    """Sample ``group_size`` completions for each prompt (one batched call) and score them."""
    rep = [p for p in prompts for _ in range(group_size)]
    responses = policy.sample(list(prompts), max_new_tokens, generator=generator, repeats=group_size)
    completions = [policy.decode_response(r) for r in responses]
    # A response cut at max_new_tokens has no eos; it is scored and trained on as it was sampled.
    rewards = checked_rewards(reward_fn, rep, completions)
    gids = [i // group_size for i in range(len(rep))]
    return SampledGroups(rep, responses, completions, rewards, gids)


def evaluate(
    policy: torch.nn.Module,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    max_new_tokens: int,
    generator: torch.Generator | None = None,
) -> float:
    """Mean reward of one sampled completion per prompt."""
    responses = policy.sample(list(prompts), max_new_tokens, generator=generator)
    rewards = checked_rewards(reward_fn, prompts, [policy.decode_response(r) for r in responses])
    return sum(rewards) / len(rewards)
