"""Actor-critic networks for the three ToolEnv policies.

A picks the first tool of an episode, B picks every later tool (the last tool and its result are in the
observation), C picks the argument at every step. Each policy has its own actor and critic MLP; the tool
"stream" is valued by A's critic at phase 0 and B's critic after, the argument stream by C's critic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

POLICIES = ("A", "B", "C")
_NEG = -1e9


def _mlp(in_dim: int, hidden: int, out_dim: int, out_gain: float) -> nn.Sequential:
    layers = [
        nn.Linear(in_dim, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, out_dim),
    ]
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=np.sqrt(2))
            nn.init.zeros_(layer.bias)
    nn.init.orthogonal_(layers[-1].weight, gain=out_gain)
    return nn.Sequential(*layers)


class ActorCritic(nn.Module):
    """One policy: a masked categorical actor and a scalar critic."""

    def __init__(self, obs_dim: int, num_actions: int, hidden: int) -> None:
        super().__init__()
        self.actor = _mlp(obs_dim, hidden, num_actions, out_gain=0.01)
        self.critic = _mlp(obs_dim, hidden, 1, out_gain=1.0)

    def logits(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.actor(obs).masked_fill(~mask, _NEG)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)


@dataclass
class PolicyOutput:
    """Per-sample outputs of :meth:`MultiPolicy.forward` for given actions."""

    logp_tool: torch.Tensor
    logp_arg: torch.Tensor
    ent_tool: torch.Tensor
    ent_arg: torch.Tensor
    v_tool: torch.Tensor
    v_arg: torch.Tensor


def _masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and probabilities over the allowed actions (probability exactly 0 where masked).

    Masked entries are zeroed after ``exp`` instead of being filled with a huge negative before it: ``exp`` of
    such values takes a slow underflow path on x86 CPUs (~30x slower), and narrow rows make
    ``torch.log_softmax`` itself slow on CPU. Masked log-probabilities are finite and meaningless.
    """
    logits = logits.float()
    top = logits.masked_fill(~mask, _NEG).amax(-1, keepdim=True).detach()
    e = (logits - top).exp() * mask
    total = e.sum(-1, keepdim=True)
    return logits - top - total.log(), e / total


def _log_prob_entropy(
    logits: torch.Tensor, mask: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logp_all, p = _masked_log_softmax(logits, mask)
    logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
    return logp, -(p * logp_all).sum(-1)


class MultiPolicy(nn.Module):
    """The three policies behind one ``forward`` (so one DDP wrapper syncs all of them)."""

    def __init__(self, obs_dim: int, num_tools: int, num_args: int, hidden: int = 64) -> None:
        super().__init__()
        self.obs_dim, self.num_tools, self.num_args, self.hidden = obs_dim, num_tools, num_args, hidden
        self.nets = nn.ModuleDict(
            {
                "A": ActorCritic(obs_dim, num_tools, hidden),
                "B": ActorCritic(obs_dim, num_tools, hidden),
                "C": ActorCritic(obs_dim, num_args, hidden),
            }
        )

    def spec(self) -> dict[str, int]:
        return {
            "obs_dim": self.obs_dim,
            "num_tools": self.num_tools,
            "num_args": self.num_args,
            "hidden": self.hidden,
        }

    def _tool_logits_values(
        self, obs: torch.Tensor, first: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A's (unmasked) logits and value on first-step rows, B's on the others (each net sees its own rows)."""
        idx_a, idx_b = first.nonzero().squeeze(-1), (~first).nonzero().squeeze(-1)
        a, b = self.nets["A"], self.nets["B"]
        oa, ob = obs.index_select(0, idx_a), obs.index_select(0, idx_b)
        la, lb = a.actor(oa), b.actor(ob)
        va, vb = a.value(oa), b.value(ob)
        logits = (
            lb.new_empty((obs.shape[0], self.num_tools)).index_copy(0, idx_a, la).index_copy(0, idx_b, lb)
        )
        values = vb.new_empty(obs.shape[0]).index_copy(0, idx_a, va).index_copy(0, idx_b, vb)
        return logits, values

    def forward(
        self,
        obs: torch.Tensor,
        tool_mask: torch.Tensor,
        arg_mask: torch.Tensor,
        phase: torch.Tensor,
        tools: torch.Tensor,
        args: torch.Tensor,
        arg_active: torch.Tensor | None = None,
    ) -> PolicyOutput:
        """Log-probabilities, entropies and values of the given actions.

        With ``arg_active`` (steps whose tool takes an argument), C runs on those rows only and its outputs are 0
        on the others: the learners weight every C term by ``arg_active``, so those rows would cost compute (most
        of C's, since most tools take no argument) and contribute nothing.
        """
        tool_logits, v_tool = self._tool_logits_values(obs, phase == 0)
        logp_tool, ent_tool = _log_prob_entropy(tool_logits, tool_mask, tools)
        c = self.nets["C"]
        if arg_active is None:
            logp_arg, ent_arg = _log_prob_entropy(c.actor(obs), arg_mask, args)
            return PolicyOutput(logp_tool, logp_arg, ent_tool, ent_arg, v_tool, c.value(obs))
        idx = arg_active.nonzero().squeeze(-1)
        rows = obs.index_select(0, idx)
        logp_arg, ent_arg = _log_prob_entropy(
            c.actor(rows), arg_mask.index_select(0, idx), args.index_select(0, idx)
        )
        zeros = obs.new_zeros(obs.shape[0])
        logp_arg, ent_arg, v_arg = (zeros.index_copy(0, idx, x) for x in (logp_arg, ent_arg, c.value(rows)))
        return PolicyOutput(logp_tool, logp_arg, ent_tool, ent_arg, v_tool, v_arg)

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        tool_mask: torch.Tensor,
        arg_mask: torch.Tensor,
        phase: torch.Tensor,
        generator: torch.Generator | None = None,
        greedy: bool = False,
    ) -> tuple[torch.Tensor, ...]:
        """Sample (or argmax) tools and args; returns tools, args, logp_tool, logp_arg, v_tool, v_arg."""
        tool_logits, v_tool = self._tool_logits_values(obs, phase == 0)
        c = self.nets["C"]
        arg_logits = c.actor(obs)
        tools = _sample(tool_logits.masked_fill(~tool_mask, _NEG), generator, greedy)
        args = _sample(arg_logits.masked_fill(~arg_mask, _NEG), generator, greedy)
        logp_tool = _masked_log_softmax(tool_logits, tool_mask)[0].gather(-1, tools.unsqueeze(-1)).squeeze(-1)
        logp_arg = _masked_log_softmax(arg_logits, arg_mask)[0].gather(-1, args.unsqueeze(-1)).squeeze(-1)
        return tools, args, logp_tool, logp_arg, v_tool, c.value(obs)

    @torch.no_grad()
    def values(self, obs: torch.Tensor, phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, v_tool = self._tool_logits_values(obs, phase == 0)
        return v_tool, self.nets["C"].value(obs)


def _sample(logits: torch.Tensor, generator: torch.Generator | None, greedy: bool) -> torch.Tensor:
    if greedy:
        return logits.argmax(-1)
    # Gumbel-max: one uniform draw per logit, cheaper than torch.multinomial for small action sets.
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1.0)
    return (logits - torch.log(-torch.log(u))).argmax(-1)


def state_to_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    """Weights as numpy arrays (CPU), for the object store and checkpoints."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, state: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
