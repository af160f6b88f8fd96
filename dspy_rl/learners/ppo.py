"""Multi-policy PPO, top to bottom: GAE, the clipped objective per policy, and the update loop.

Three policies share each transition: the tool policy that acted (A at an episode's first step, B after) and
the argument policy C. The team reward trains both streams; C's policy loss counts only the steps whose tool
takes an argument (``arg_active``), since elsewhere its action has no effect and would only add noise.
Each policy has its own actor, critic and Adam optimizer; because no parameter is shared, summing the three
losses and stepping each optimizer is exactly three independent PPO updates, done in one backward pass (and
one DDP all-reduce when distributed). The three policies' terms are computed together on ``(N, 3)`` tensors (one
column per policy; ``w`` marks the samples a policy acted on): a third of the operations of a loop over the
policies, which matters on CPU, where small ops cost more than their arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from dspy_rl.models.policy import POLICIES, MultiPolicy
from dspy_rl.utils.compile import CompiledForward, compile_forward, plain_state_dict

#: Per-step arrays every algorithm's batch carries (flat, one row per env step), as produced by the EnvRunners.
STEP_KEYS = ("obs", "tool_mask", "arg_mask", "phase", "tools", "args", "arg_active", "logp_tool", "logp_arg")
#: PPO adds GAE advantages and returns for the tool stream (A/B) and the argument stream (C).
BATCH_KEYS = (*STEP_KEYS, "adv_tool", "ret_tool", "adv_arg", "ret_arg")
#: The batch keys ``MultiPolicy.forward`` takes, in its argument order (``arg_active``: C runs on those rows only).
MODEL_INPUTS = ("obs", "tool_mask", "arg_mask", "phase", "tools", "args", "arg_active")


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_values: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a (T, N) rollout; returns (advantages, returns).

    ``dones[t]`` marks that the episode ended at step t (the env auto-reset), so V(s_{t+1}) is not bootstrapped.
    Truncation is treated as termination: the step fraction is part of the observation, so it is Markov.
    """
    steps = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float32)
    last_gae = np.zeros(rewards.shape[1], dtype=np.float32)
    next_values = last_values.astype(np.float32)
    for t in range(steps - 1, -1, -1):
        not_done = 1.0 - dones[t].astype(np.float32)
        delta = rewards[t] + gamma * next_values * not_done - values[t]
        last_gae = delta + gamma * lam * not_done * last_gae
        adv[t] = last_gae
        next_values = values[t]
    return adv, adv + values


def _normalize(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum()
    if n < 2:
        return x
    mean = (x * mask).sum() / n
    std = (((x - mean) ** 2) * mask).sum().div(n - 1).sqrt()
    return torch.where(mask.bool(), (x - mean) / (std + 1e-8), x)


def _masked_mean(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean over the samples (dim 0): one value per policy column."""
    return (x * w).sum(0) / w.sum(0).clamp(min=1.0)


def ppo_terms(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    value: torch.Tensor,
    ret: torch.Tensor,
    entropy: torch.Tensor,
    weight: torch.Tensor,
    clip: float,
) -> dict[str, torch.Tensor]:
    """Clipped surrogate, value loss and entropy per policy (column), averaged over the samples it acted on."""
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip))
    terms = {
        "pg_loss": _masked_mean(pg, weight),
        "v_loss": _masked_mean(0.5 * (value - ret) ** 2, weight),
        "entropy": _masked_mean(entropy, weight),
    }
    with torch.no_grad():  # diagnostics: keep them out of the autograd graph
        terms["approx_kl"] = _masked_mean((ratio - 1) - log_ratio, weight)
        terms["clipfrac"] = _masked_mean(((ratio - 1).abs() > clip).float(), weight)
    return terms


def _to_cpu(x: Any) -> Any:
    """``x`` (nested dicts/lists of tensors and plain values) with every tensor on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu()
    if isinstance(x, dict):
        return {k: _to_cpu(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_cpu(v) for v in x)
    return x


def _grad(p: nn.Parameter) -> torch.Tensor:
    return p.grad if p.grad is not None else torch.zeros_like(p)


def _per_policy(tool: torch.Tensor, arg: torch.Tensor) -> torch.Tensor:
    """``(N, 3)`` columns A, B, C of a per-step quantity: A and B share the tool stream, C has the argument's."""
    return torch.stack((tool, tool, arg), 1)


def flat_parameter(params: list[nn.Parameter]) -> nn.Parameter:
    """One contiguous parameter holding ``params``, which become views of it.

    The optimizer step and the gradient clipping then run one op per policy instead of one per weight and bias;
    on CPU, with networks this small, the per-op cost is most of the optimizer's time. The module keeps its
    parameters (state dicts, DDP and ``forward`` are unchanged); :meth:`PPOLearner._step` gathers their gradients
    into ``flat.grad`` with one ``cat``.
    """
    flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    offset = 0
    for p in params:
        p.data = flat.data[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


@dataclass
class LearnerHyper:
    """Settings every learner's update loop uses (a subset of the ``algo`` config)."""

    lr: float = 1e-3
    clip: float = 0.2
    epochs: int = 4
    minibatch_size: int = 2048
    max_grad_norm: float = 1.0

    @classmethod
    def from_config(cls, algo: Any) -> Any:
        return cls(**{k: getattr(algo, k) for k in cls.__dataclass_fields__})


@dataclass
class PPOHyper(LearnerHyper):
    vf_coef: float = 0.5
    ent_coef: float = 0.01


class PPOLearner:
    """Owns the policies and their optimizers; ``update`` runs PPO epochs over one batch.

    ``model`` may be wrapped (``wrap``) in DistributedDataParallel by a learner actor; gradients are then
    all-reduced across learners during backward. Subclasses (env GRPO) change ``keys``, ``_prepare``,
    ``_losses`` and ``_trained_params``; the minibatch loop, optimizer steps and state handling are shared.
    """

    keys: tuple[str, ...] = BATCH_KEYS

    def __init__(
        self,
        model: MultiPolicy,
        hp: Any,
        device: torch.device,
        seed: int = 0,
        mixed_precision: bool = False,
        compile: bool = False,
    ) -> None:
        self.model = model.to(device)
        # runtime.compile: only the forward used by the update is compiled; self.model stays the eager module,
        # so state dicts and the weights sent to runners carry no ``_orig_mod.`` prefix.
        self.compile = compile
        self.forward_model: nn.Module | CompiledForward = compile_forward(self.model, compile)
        self.hp, self.device = hp, device
        self.amp = mixed_precision and device.type == "cuda"
        self.params = {p: list(self._trained_params(p)) for p in POLICIES}
        self.flat = {p: flat_parameter(self.params[p]) for p in POLICIES}
        # Fused Adam over one flat tensor: a single kernel per policy, on CPU as well.
        self.optimizers = {
            p: torch.optim.Adam([self.flat[p]], lr=hp.lr, eps=1e-5, fused=True) for p in POLICIES
        }
        self.generator = torch.Generator().manual_seed(seed)

    def _trained_params(self, policy: str) -> Any:
        return self.model.nets[policy].parameters()

    def wrap(self, wrapper: nn.Module) -> None:
        self.forward_model = compile_forward(wrapper, self.compile)

    def _prepare(self, data: dict[str, torch.Tensor]) -> None:
        """Per-batch preprocessing in place: per-policy columns (A, B, C) of weights, old log-probs, advantages
        (normalized per policy over the samples it acted on) and returns."""
        first = (data["phase"] == 0).float()
        w = torch.stack((first, 1.0 - first, data["arg_active"].float()), 1)
        adv_tool = _normalize(_normalize(data.pop("adv_tool"), first), 1.0 - first)
        data["w"] = w
        data["adv"] = torch.stack((adv_tool, adv_tool, _normalize(data.pop("adv_arg"), w[:, 2])), 1)
        data["old_logp"] = _per_policy(data.pop("logp_tool"), data.pop("logp_arg"))
        data["ret"] = _per_policy(data.pop("ret_tool"), data.pop("ret_arg"))

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        data = {
            k: torch.from_numpy(np.ascontiguousarray(batch[k])).to(self.device, non_blocking=True)
            for k in self.keys
        }
        self._prepare(data)
        n = data["obs"].shape[0]
        sums: dict[str, torch.Tensor] = {}
        count = 0
        mb = min(self.hp.minibatch_size, n)
        for _ in range(self.hp.epochs):
            perm = torch.randperm(n, generator=self.generator).to(self.device)
            shuffled = {k: v.index_select(0, perm) for k, v in data.items()}  # one gather per epoch
            for start in range(0, n - mb + 1, mb):
                for k, v in self._step({k: v[start : start + mb] for k, v in shuffled.items()}).items():
                    sums[k] = sums[k] + v if k in sums else v
                count += 1
        # Metrics stay tensors until here: one host sync per update (one ``tolist``), not one per metric per
        # minibatch. A metric is a (3,) tensor (one value per policy) or a scalar.
        flat = [torch.as_tensor(v, dtype=torch.float64, device=self.device) for v in sums.values()]
        values = (torch.cat([t.reshape(-1) for t in flat]) / max(count, 1)).tolist() if flat else []
        out: dict[str, float] = {}
        i = 0
        for k, t in zip(sums, flat, strict=True):
            if t.ndim:
                out.update({f"{p}/{k}": x for p, x in zip(POLICIES, values[i : i + t.numel()], strict=True)})
            else:
                out[k] = values[i]
            i += t.numel()
        return out

    def _losses(self, mb: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The summed loss and the metrics; a metric with one value per policy is a ``(3,)`` tensor."""
        hp = self.hp
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            out = self.forward_model(*(mb[k] for k in MODEL_INPUTS))
        terms = ppo_terms(
            _per_policy(out.logp_tool, out.logp_arg),
            mb["old_logp"],
            mb["adv"],
            _per_policy(out.v_tool, out.v_arg).float(),
            mb["ret"],
            _per_policy(out.ent_tool, out.ent_arg),
            mb["w"],
            hp.clip,
        )
        loss = (terms["pg_loss"] + hp.vf_coef * terms["v_loss"] - hp.ent_coef * terms["entropy"]).sum()
        return loss, {k: t.detach() for k, t in terms.items()}

    def _step(self, mb: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        loss, metrics = self._losses(mb)
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        norms = []
        for p in POLICIES:
            grad = torch.cat([_grad(q).reshape(-1) for q in self.params[p]])
            norm = torch.linalg.vector_norm(grad)  # the pre-clip norm, as clip_grad_norm_ reports it
            grad.mul_((self.hp.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
            self.flat[p].grad = grad
            norms.append(norm)
        metrics["grad_norm"] = torch.stack(norms)
        for opt in self.optimizers.values():
            opt.step()
        metrics["loss"] = loss.detach()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        """CPU tensors only (optimizer moments included), so a GPU learner's state loads where there is no GPU:
        in a CPU driver that receives it through Ray, or with a plain ``torch.load``. ``load_state_dict`` moves the
        optimizer state back to the parameters' device."""
        return {
            "model": {k: v.cpu() for k, v in self.model.state_dict().items()},
            "optimizers": {p: _to_cpu(o.state_dict()) for p, o in self.optimizers.items()},
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(plain_state_dict(state["model"]))
        for p, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][p])
        self.generator.set_state(state["generator"])
