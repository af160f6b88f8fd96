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
        # fp32 outputs: under CUDA autocast C's critic returns bf16, and index_copy (unlike on CPU autocast) does
        # not promote, so a bf16 source into the fp32 zeros would raise.
        zeros = obs.new_zeros(obs.shape[0], dtype=torch.float32)
        logp_arg, ent_arg, v_arg = (
            zeros.index_copy(0, idx, x.float()) for x in (logp_arg, ent_arg, c.value(rows))
        )
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
        takes_arg: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Sample (or argmax) tools and args; returns tools, args, logp_tool, logp_arg, v_tool, v_arg.

        With ``takes_arg`` (per tool: does it take an argument), C's actor runs only on the rows whose sampled tool
        takes one; the other rows get arg 0 (always a valid candidate, and ignored by such tools) with
        log-probability 0, the value every learner weights out by ``arg_active``. C's critic still values every
        row: the argument stream's GAE bootstraps through all steps.
        """
        tool_logits, v_tool = self._tool_logits_values(obs, phase == 0)
        tools, logp_tool = _sample(tool_logits, tool_mask, generator, greedy)
        c = self.nets["C"]
        if takes_arg is None:
            args, logp_arg = _sample(c.actor(obs), arg_mask, generator, greedy)
        else:
            idx = takes_arg.index_select(0, tools).nonzero().squeeze(-1)
            rows_args, rows_logp = _sample(
                c.actor(obs.index_select(0, idx)), arg_mask.index_select(0, idx), generator, greedy
            )
            args = tools.new_zeros(tools.shape).index_copy_(0, idx, rows_args)
            logp_arg = logp_tool.new_zeros(tools.shape).index_copy_(0, idx, rows_logp)
        return tools, args, logp_tool, logp_arg, v_tool, c.value(obs)

    @torch.no_grad()
    def values(self, obs: torch.Tensor, phase: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, v_tool = self._tool_logits_values(obs, phase == 0)
        return v_tool, self.nets["C"].value(obs)


def _sample(
    logits: torch.Tensor, mask: torch.Tensor, generator: torch.Generator | None, greedy: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from the masked softmax (or its argmax) and their log-probabilities.

    Inverse-CDF sampling on the probabilities the log-probabilities need anyway: one uniform per row. Masked
    actions have probability exactly 0, and ``u`` is in (0, 1], so they are never drawn.
    """
    logp_all, p = _masked_log_softmax(logits, mask)
    if greedy:
        actions = p.argmax(-1)
    else:
        cdf = p.cumsum(-1)
        u = 1.0 - torch.rand((p.shape[0], 1), generator=generator, device=p.device)
        actions = (cdf < u * cdf[:, -1:]).sum(-1)
    return actions, logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def state_to_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    """Weights as numpy arrays (CPU), for the object store and checkpoints."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, state: dict[str, np.ndarray]) -> None:
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
