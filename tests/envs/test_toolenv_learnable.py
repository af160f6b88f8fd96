"""The default suite is learnable: a small masked-MLP PPO reaches high success within a few hundred k steps.

Slow (about 1-2 minutes on one core), so excluded from the default run: ``pytest -m slow tests/envs``.
The PPO here is a compact test-local learner (one network with tool, argument and value heads), independent of
the project's trainer, so this checks the environment data rather than the trainer.
"""

from __future__ import annotations

import numpy as np
import pytest

from dspy_rl.envs import VecToolEnv

torch = pytest.importorskip("torch")


class _Net(torch.nn.Module):
    def __init__(self, obs_dim: int, num_tools: int, num_args: int) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Linear(obs_dim, 128), torch.nn.Tanh(), torch.nn.Linear(128, 128), torch.nn.Tanh()
        )
        self.tool, self.arg, self.value = (torch.nn.Linear(128, k) for k in (num_tools, num_args, 1))

    def forward(self, obs, tool_mask, arg_mask):
        h = self.body(obs)
        tools = torch.distributions.Categorical(logits=self.tool(h).masked_fill(~tool_mask, -1e9))
        args = torch.distributions.Categorical(logits=self.arg(h).masked_fill(~arg_mask, -1e9))
        return tools, args, self.value(h).squeeze(-1)


@pytest.mark.slow
def test_small_ppo_learns_the_default_suite() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    num_envs, horizon, iterations = 256, 32, 70  # ~570k env steps
    env = VecToolEnv(num_envs, "default", seed=0, num_threads=1)
    net = _Net(env.obs_dim, env.num_tools, env.num_args)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    success_per_iter = []
    for _ in range(iterations):
        batch = {k: [] for k in ("obs", "tm", "am", "tool", "arg", "logp", "value", "reward", "done")}
        successes = []
        with torch.no_grad():
            for _ in range(horizon):
                obs, tm, am = (torch.from_numpy(x.copy()) for x in (env.obs, env.tool_mask, env.arg_mask))
                tools, args, value = net(obs, tm, am)
                tool, arg = tools.sample(), args.sample()
                env.step(tool.numpy().astype(np.int64), arg.numpy().astype(np.int64))
                done = env.terminated | env.truncated
                successes += env.episode_success[done].tolist()
                for k, v in zip(
                    batch,
                    (
                        obs,
                        tm,
                        am,
                        tool,
                        arg,
                        tools.log_prob(tool) + args.log_prob(arg),
                        value,
                        torch.from_numpy(env.rewards.copy()),
                        torch.from_numpy(done.astype(np.float32)),
                    ),
                    strict=True,
                ):
                    batch[k].append(v)
            last_value = net(*(torch.from_numpy(x.copy()) for x in (env.obs, env.tool_mask, env.arg_mask)))[2]
        b = {k: torch.stack(v) for k, v in batch.items()}
        values = torch.cat([b["value"], last_value[None]])
        adv = torch.zeros_like(b["reward"])
        running = torch.zeros(num_envs)
        for t in reversed(range(horizon)):
            keep = 1.0 - b["done"][t]
            delta = b["reward"][t] + 0.99 * values[t + 1] * keep - values[t]
            running = delta + 0.99 * 0.95 * keep * running
            adv[t] = running
        returns = adv + values[:-1]
        flat = {k: v.reshape(horizon * num_envs, *v.shape[2:]) for k, v in b.items()}
        flat_adv = adv.flatten()
        flat_adv = (flat_adv - flat_adv.mean()) / (flat_adv.std() + 1e-8)
        flat_ret = returns.flatten()
        for _ in range(4):
            for mb in torch.randperm(horizon * num_envs).split(2048):
                tools, args, value = net(flat["obs"][mb], flat["tm"][mb], flat["am"][mb])
                ratio = (
                    tools.log_prob(flat["tool"][mb]) + args.log_prob(flat["arg"][mb]) - flat["logp"][mb]
                ).exp()
                policy_loss = -torch.min(ratio * flat_adv[mb], ratio.clamp(0.8, 1.2) * flat_adv[mb]).mean()
                loss = policy_loss + 0.5 * ((value - flat_ret[mb]) ** 2).mean()
                loss = loss - 0.01 * (tools.entropy() + args.entropy()).mean()
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
                opt.step()
        success_per_iter.append(float(np.mean(successes)) if successes else 0.0)
    assert success_per_iter[0] < 0.2
    assert np.mean(success_per_iter[-3:]) >= 0.8, success_per_iter
