"""PPO core: GAE against a hand computation, the clipped objective, masking, per-policy independence."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dspy_rl.learners.ppo import PPOHyper, PPOLearner, compute_gae, ppo_terms
from dspy_rl.models.policy import POLICIES, MultiPolicy

from ._helpers import random_batch


def test_gae_matches_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    rewards = np.array([[1.0], [0.0], [2.0]], np.float32)
    values = np.array([[0.5], [0.4], [0.3]], np.float32)
    dones = np.array([[False], [True], [False]])
    last = np.array([1.0], np.float32)
    adv, ret = compute_gae(rewards, values, dones, last, gamma, lam)
    d2 = 2.0 + 0.9 * 1.0 - 0.3  # bootstrap from last value
    d1 = 0.0 + 0.0 - 0.4  # episode ended at t=1: no bootstrap, no carry
    d0 = 1.0 + 0.9 * 0.4 - 0.5
    a0 = d0 + 0.9 * 0.8 * d1
    np.testing.assert_allclose(adv[:, 0], [a0, d1, d2], rtol=1e-6)
    np.testing.assert_allclose(ret, adv + values, rtol=1e-6)


def test_clipped_objective_engages_only_outside_the_range() -> None:
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    old = torch.zeros(4)
    # ratios 1.5 (clipped for adv>0), 0.9 (inside), 0.5 (clipped for adv<0), 1.1 (inside)
    logp = torch.log(torch.tensor([1.5, 0.9, 0.5, 1.1]))
    w = torch.ones(4)
    terms = ppo_terms(logp, old, adv, torch.zeros(4), torch.zeros(4), torch.zeros(4), w, clip=0.2)
    expected = np.mean([-1.2, -0.9, 0.8, 1.1])
    assert float(terms["pg_loss"]) == pytest.approx(expected, rel=1e-6)
    assert float(terms["clipfrac"]) == pytest.approx(0.5)


def test_policy_masks_exclude_invalid_actions() -> None:
    torch.manual_seed(0)
    model = MultiPolicy(obs_dim=6, num_tools=5, num_args=3, hidden=16)
    obs = torch.randn(256, 6)
    tool_mask = torch.zeros(256, 5, dtype=torch.bool)
    tool_mask[:, [1, 3]] = True
    arg_mask = torch.zeros(256, 3, dtype=torch.bool)
    arg_mask[:, 2] = True
    phase = torch.randint(0, 2, (256,), dtype=torch.uint8)
    tools, args, lp_t, lp_a, _, _ = model.act(obs, tool_mask, arg_mask, phase)
    assert set(tools.tolist()) <= {1, 3}
    assert set(args.tolist()) == {2}
    assert torch.allclose(lp_a, torch.zeros_like(lp_a))  # the only valid arg has probability 1
    assert (lp_t <= 0).all()


def test_sampled_actions_follow_the_masked_softmax() -> None:
    """Sampling draws each allowed action with its softmax probability (counts within 5 sigma over 60k draws),
    never a masked one, and reports the log-probability of the action it drew; greedy takes the best allowed."""
    torch.manual_seed(0)
    model = MultiPolicy(obs_dim=6, num_tools=5, num_args=3, hidden=16)
    with torch.no_grad():
        model.nets["B"].actor[-1].bias.copy_(
            torch.tensor([3.0, 0.5, -1.0, 0.0, 1.0])
        )  # a peaked distribution
    n = 60_000
    obs = torch.randn(1, 6).expand(n, 6)
    tool_mask = torch.tensor([False, True, True, True, True]).expand(n, 5)  # the likeliest tool is masked
    phase = torch.ones(n, dtype=torch.uint8)
    arg_mask = torch.ones(n, 3, dtype=torch.bool)
    gen = torch.Generator().manual_seed(1)
    tools, _, lp_t, _, _, _ = model.act(obs, tool_mask, arg_mask, phase, gen)
    logits = model.nets["B"].actor(obs[:1])[0].masked_fill(~tool_mask[0], float("-inf"))
    p = torch.softmax(logits, -1)
    counts = torch.bincount(tools, minlength=5).float()
    assert counts[0] == 0
    sigma = (n * p * (1 - p)).sqrt()
    assert ((counts - n * p).abs() <= 5 * sigma + 1e-6).all(), (counts / n, p)
    torch.testing.assert_close(lp_t, p.log()[tools])
    greedy, *_ = model.act(obs[:4], tool_mask[:4], arg_mask[:4], phase[:4], greedy=True)
    assert greedy.tolist() == [int(p.argmax())] * 4


def test_arg_policy_acts_only_where_the_sampled_tool_takes_an_argument() -> None:
    """With ``takes_arg``, rows whose tool takes no argument get arg 0 and log-prob 0 (C's actor is not run
    there); the others get a valid arg with C's log-probability of it; C's value covers every row."""
    torch.manual_seed(0)
    model = MultiPolicy(obs_dim=6, num_tools=5, num_args=3, hidden=16)
    n = 512
    obs, phase = torch.randn(n, 6), torch.randint(0, 2, (n,), dtype=torch.uint8)
    tool_mask = torch.ones(n, 5, dtype=torch.bool)
    arg_mask = torch.rand(n, 3) < 0.5
    arg_mask[:, 0] = True
    takes_arg = torch.tensor([True, False, True, False, False])
    tools, args, _, lp_a, _, v_a = model.act(obs, tool_mask, arg_mask, phase, takes_arg=takes_arg)
    active = takes_arg[tools]
    assert 0 < int(active.sum()) < n
    assert (args[~active] == 0).all() and (lp_a[~active] == 0).all()
    assert arg_mask[active, args[active]].all()
    out = model(obs, tool_mask, arg_mask, phase, tools, args)
    torch.testing.assert_close(lp_a[active], out.logp_arg[active])
    torch.testing.assert_close(v_a, out.v_arg)


def test_update_leaves_policies_without_samples_untouched() -> None:
    """A acts only at phase 0; a batch with no phase-0 rows must not move A's actor (independent policies)."""
    torch.manual_seed(0)
    model = MultiPolicy(obs_dim=4, num_tools=3, num_args=2, hidden=8)
    learner = PPOLearner(model, PPOHyper(epochs=2, minibatch_size=32, ent_coef=0.0), torch.device("cpu"))
    n = 64
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.normal(size=(n, 4)).astype(np.float32),
        "tool_mask": np.ones((n, 3), bool),
        "arg_mask": np.ones((n, 2), bool),
        "phase": np.ones(n, np.uint8),
        "tools": rng.integers(0, 3, n),
        "args": rng.integers(0, 2, n),
        "arg_active": np.ones(n, bool),
        "logp_tool": np.full(n, np.log(1 / 3), np.float32),
        "logp_arg": np.full(n, np.log(1 / 2), np.float32),
        "adv_tool": rng.normal(size=n).astype(np.float32),
        "ret_tool": rng.normal(size=n).astype(np.float32),
        "adv_arg": rng.normal(size=n).astype(np.float32),
        "ret_arg": rng.normal(size=n).astype(np.float32),
    }
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = learner.update(batch)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("nets.A."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("nets.B.actor"))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("nets.C.actor"))
    assert np.isfinite(metrics["loss"])


def test_per_policy_columns_equal_one_ppo_loss_per_policy() -> None:
    """The learner's (N, 3) loss, with C evaluated on arg-active rows only, equals three separate PPO losses
    computed the plain way (full forward, one ``ppo_terms`` per policy): same value, same gradients."""
    torch.manual_seed(0)
    hp = PPOHyper(vf_coef=0.5, ent_coef=0.01)
    model = MultiPolicy(obs_dim=6, num_tools=5, num_args=3, hidden=16)
    learner = PPOLearner(model, hp, torch.device("cpu"))
    raw = random_batch(512, 6, 5, 3)
    mb = dict(raw)
    learner._prepare(mb)
    loss, metrics = learner._losses(mb)
    grads = torch.autograd.grad(loss, list(model.parameters()))

    out = model(raw["obs"], raw["tool_mask"], raw["arg_mask"], raw["phase"], raw["tools"], raw["args"])
    first = (raw["phase"] == 0).float()
    weights = {"A": first, "B": 1.0 - first, "C": raw["arg_active"].float()}
    streams = {
        "A": (out.logp_tool, "tool", out.v_tool, out.ent_tool),
        "B": (out.logp_tool, "tool", out.v_tool, out.ent_tool),
        "C": (out.logp_arg, "arg", out.v_arg, out.ent_arg),
    }
    ref_loss = torch.zeros(())
    for i, (p, (logp, s, v, ent)) in enumerate(streams.items()):
        w = weights[p]
        adv = raw[f"adv_{s}"]
        adv = (adv - adv[w.bool()].mean()) / (adv[w.bool()].std() + 1e-8)  # normalized over the policy's rows
        t = ppo_terms(logp, raw[f"logp_{s}"], adv, v, raw[f"ret_{s}"], ent, w, hp.clip)
        ref_loss = ref_loss + t["pg_loss"] + hp.vf_coef * t["v_loss"] - hp.ent_coef * t["entropy"]
        assert float(metrics["v_loss"][i]) == pytest.approx(float(t["v_loss"].detach()), rel=1e-5)
    ref_grads = torch.autograd.grad(ref_loss, list(model.parameters()))
    assert float(loss.detach()) == pytest.approx(float(ref_loss.detach()), rel=1e-5)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_flat_optimizer_step_equals_per_parameter_adam_with_clipping() -> None:
    """The learner keeps each policy's parameters in one flat tensor (one Adam kernel, one clipping op per
    policy). Three updates must move the weights exactly as per-parameter Adam after ``clip_grad_norm_``, with
    clipping engaged, and the model's parameters must stay the live views the optimizer updates."""
    torch.manual_seed(0)
    hp = PPOHyper(lr=1e-2, epochs=1, minibatch_size=256, max_grad_norm=0.05)
    model = MultiPolicy(obs_dim=6, num_tools=5, num_args=3, hidden=16)
    ref_model = copy.deepcopy(model)
    learner = PPOLearner(model, hp, torch.device("cpu"))
    ref = PPOLearner(ref_model, hp, torch.device("cpu"))  # only its loss is used
    ref_opts = {p: torch.optim.Adam(ref_model.nets[p].parameters(), lr=hp.lr, eps=1e-5) for p in POLICIES}
    for seed in range(3):
        raw = random_batch(256, 6, 5, 3, seed=seed)
        metrics = learner.update({k: v.numpy() for k, v in raw.items()})
        mb = dict(raw)
        ref._prepare(mb)
        loss, _ = ref._losses(mb)  # one minibatch = the whole batch, so the shuffle does not matter
        ref_model.zero_grad(set_to_none=True)
        loss.backward()
        for p in POLICIES:
            norm = torch.nn.utils.clip_grad_norm_(ref_model.nets[p].parameters(), hp.max_grad_norm)
            assert metrics[f"{p}/grad_norm"] == pytest.approx(float(norm), rel=1e-4)
            assert float(norm) > hp.max_grad_norm  # clipping engaged
            ref_opts[p].step()
    for (name, got), want in zip(model.state_dict().items(), ref_model.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6, msg=name)
    assert all(
        q.data_ptr() == learner.flat[p].data_ptr() + 4 * offset
        for p in POLICIES
        for q, offset in zip(
            learner.params[p], np.cumsum([0] + [q.numel() for q in learner.params[p]][:-1]), strict=True
        )
    )
