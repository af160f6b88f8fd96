"""Correctness of the GRPO loss core against hand computations (dspy_rl.learners.grpo)."""

from __future__ import annotations

import math

import pytest
import torch

from dspy_rl.learners.grpo import group_advantages, grpo_loss, kl_coef, kl_k3, no_signal_groups


def test_group_advantages_hand_computed():
    # group 7: rewards 1, 0    -> mean 0.5, sample std sqrt(0.5) = 0.707107 -> A = +-0.707107
    # group 3: rewards 2, 2    -> no signal -> A = 0
    # group 5: rewards 3, 0, 0 -> mean 1, deviations 2, -1, -1, sample var (4+1+1)/2 = 3 -> A = 1.154701, -0.577350
    # group 9: one member      -> no signal -> A = 0
    rewards = torch.tensor([1.0, 2.0, 3.0, 0.0, 2.0, 0.0, 0.0, 4.0])
    groups = torch.tensor([7, 3, 5, 7, 3, 5, 5, 9])
    adv = group_advantages(rewards, groups, eps=0.0)
    expected = torch.tensor([0.707107, 0.0, 1.154701, -0.707107, 0.0, -0.577350, -0.577350, 0.0])
    torch.testing.assert_close(adv, expected, atol=1e-6, rtol=0)
    assert no_signal_groups(rewards, groups).tolist() == [False, True, False, False, True, False, False, True]


def test_equal_rewards_give_exactly_zero_advantage():
    # 0.1 * 3 / 3 != 0.1 in floating point; the advantage must still be exactly 0, also with a tiny eps.
    rewards = torch.tensor([0.1, 0.1, 0.1, -7.3, -7.3])
    groups = torch.tensor([0, 0, 0, 1, 1])
    for eps in (0.0, 1e-12, 1e-6):
        adv = group_advantages(rewards, groups, eps=eps)
        assert torch.equal(adv, torch.zeros(5))
    # and a zero advantage contributes no policy gradient
    logp = torch.tensor([-1.0, -2.0, -0.3, -0.5, -4.0], requires_grad=True)
    out = grpo_loss(logp, logp.detach(), group_advantages(rewards, groups))
    out.loss.backward()
    assert torch.equal(logp.grad, torch.zeros(5))


def test_loss_and_gradient_equal_hand_computation():
    # Two samples, two tokens each; the second token of sample 1 is padding (mask 0).
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -1.5]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[-1.3, -2.0], [-0.5, -1.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.0, -1.5], [-0.7, -1.5]], dtype=torch.float64)
    mask = torch.tensor([[1, 1], [1, 0]], dtype=torch.bool)
    adv = torch.tensor([1.0, -2.0], dtype=torch.float64)
    out = grpo_loss(logp, old, adv, mask, ref_logp=ref, clip_eps=0.2, beta=0.1, aggregation="sequence")
    # token (0,0): ratio e^0.3 = 1.349859 > 1.2 with A = +1 -> clipped: pg = -1.2, no pg gradient;
    #              KL: x = ref - logp = 0 -> k3 = 0, d k3/d logp = 1 - e^x = 0.          loss_t = -1.2
    # token (0,1): ratio 1, A = +1 -> pg = -1 (grad -1); x = 0.5 -> k3 = e^0.5 - 1.5 = 0.148721,
    #              d k3/d logp = 1 - e^0.5 = -0.648721.                                loss_t = -0.985128
    # token (1,0): ratio 1, A = -2 -> pg = +2 (grad +2); x = -0.2 -> k3 = e^-0.2 - 0.8 = 0.018731,
    #              d k3/d logp = 1 - e^-0.2 = 0.181269.                                 loss_t = 2.001873
    # token (1,1): masked out (its ratio e^-0.5 would be clipped, but it must not count at all).
    # sequence aggregation: sample means -1.092564 and 2.001873, loss = mean = 0.454655
    # gradients: (0,0) 0; (0,1) (-1 + 0.1 * -0.648721) / 2 / 2 = -0.266218; (1,0) (2 + 0.1 * 0.181269) / 1 / 2 = 1.009063
    assert out.loss.item() == pytest.approx(0.454655, abs=1e-6)
    out.loss.backward()
    expected_grad = torch.tensor([[0.0, -0.266218], [1.009063, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(logp.grad, expected_grad, atol=1e-6, rtol=0)
    assert out.clip_frac.item() == pytest.approx(1 / 3)
    assert out.ratio_mean.item() == pytest.approx((math.exp(0.3) + 2) / 3)
    assert out.kl.item() == pytest.approx(0.055817, abs=1e-6)


def test_token_aggregation_weights_every_valid_token_equally():
    logp = torch.tensor([[-1.0, -1.0, -1.0], [-1.0, 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    adv = torch.tensor([1.0, -1.0])
    out = grpo_loss(logp, logp.detach(), adv, mask, aggregation="token")
    # four valid tokens, ratio 1: loss = (-1 -1 -1 +1) / 4 = -0.5; each valid token's grad = -A / 4
    assert out.loss.item() == pytest.approx(-0.5)
    out.loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.25, -0.25, -0.25], [0.25, 0.0, 0.0]]))


def test_kl_is_zero_when_policy_equals_reference():
    logp = torch.log_softmax(torch.randn(4, 6, 10, generator=torch.Generator().manual_seed(0)), -1)[..., 0]
    assert torch.equal(kl_k3(logp, logp.clone()), torch.zeros_like(logp))
    logp = logp.clone().requires_grad_(True)
    out = grpo_loss(logp, logp.detach(), torch.zeros(4), ref_logp=logp.detach().clone(), beta=1.0)
    assert out.kl.item() == 0.0
    out.loss.backward()
    assert torch.equal(logp.grad, torch.zeros_like(logp))  # zero advantage and zero KL gradient
    # and it is positive when they differ
    assert (kl_k3(logp.detach(), logp.detach() + 0.3) > 0).all()


def test_k3_is_an_unbiased_kl_estimate():
    # E_{a ~ pi}[k3] = KL(pi || ref) for categorical distributions (checked exactly by enumeration).
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    ref = torch.tensor([0.2, 0.2, 0.6], dtype=torch.float64)
    expected = (pi * (pi.log() - ref.log())).sum()
    assert (pi * kl_k3(pi.log(), ref.log())).sum().item() == pytest.approx(expected.item())


@pytest.mark.parametrize("adv_sign", [1.0, -1.0])
def test_clipping_engages_exactly_outside_the_trust_region(adv_sign: float):
    eps_low, eps_high = 0.2, 0.28
    ratios = torch.tensor([0.5, 0.79, 0.81, 1.0, 1.27, 1.29, 2.0], dtype=torch.float64)
    old = torch.zeros(7, dtype=torch.float64)
    logp = ratios.log().clone().requires_grad_(True)
    adv = torch.full((7,), adv_sign, dtype=torch.float64)
    out = grpo_loss(logp, old, adv, clip_eps=eps_low, clip_eps_high=eps_high, aggregation="token")
    out.loss.backward()
    if adv_sign > 0:  # gains are capped above 1 + eps_high; below the range the unclipped term is the min
        clipped = ratios > 1 + eps_high
    else:  # losses are capped below 1 - eps_low
        clipped = ratios < 1 - eps_low
    expected_grad = torch.where(clipped, torch.zeros(7, dtype=torch.float64), -adv * ratios / 7)
    torch.testing.assert_close(logp.grad, expected_grad)
    assert out.clip_frac.item() == pytest.approx(clipped.double().mean().item())


def test_one_action_per_sample_layout_matches_two_dimensional():
    gen = torch.Generator().manual_seed(1)
    logp = torch.randn(6, generator=gen, dtype=torch.float64)
    old = logp + 0.1 * torch.randn(6, generator=gen, dtype=torch.float64)
    ref = logp + 0.1 * torch.randn(6, generator=gen, dtype=torch.float64)
    adv = torch.randn(6, generator=gen, dtype=torch.float64)
    flat = grpo_loss(logp, old, adv, ref_logp=ref, beta=0.05)
    col = grpo_loss(logp[:, None], old[:, None], adv, ref_logp=ref[:, None], beta=0.05)
    assert flat.loss.item() == pytest.approx(col.loss.item())


def test_kl_warmup_schedule():
    assert kl_coef(0, 0.04, 100) == 0.0
    assert kl_coef(50, 0.04, 100) == pytest.approx(0.02)
    assert kl_coef(100, 0.04, 100) == pytest.approx(0.04)
    assert kl_coef(10_000, 0.04, 100) == pytest.approx(0.04)
    assert kl_coef(0, 0.04, 0) == pytest.approx(0.04)
    with pytest.raises(ValueError, match="kl_target"):
        kl_coef(1, -1.0, 10)


def test_bad_shapes_are_rejected_with_a_message():
    with pytest.raises(ValueError, match="same shape"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="advantages"):
        grpo_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 2), torch.zeros(2, 2))
