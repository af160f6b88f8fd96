"""LearnerGroup: K learner actors training one model with torch DDP, or (K=0) a learner in the driver."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from datetime import timedelta
from typing import Any

import numpy as np
import ray
import torch

from dspy_rl.learners.grpo_env import GRPOEnvLearner, GRPOHyper
from dspy_rl.learners.ppo import PPOHyper, PPOLearner
from dspy_rl.models.policy import MultiPolicy, state_to_numpy
from dspy_rl.utils.device import resolve_device

log = logging.getLogger(__name__)


def learner_gpu_device(
    device: torch.device, requested: str, num_learners: int, cluster_gpus: float
) -> torch.device:
    """The device of ``num_learners`` DDP learner actors, given the GPUs the Ray cluster has.

    Each CUDA learner actor takes one whole GPU (``num_gpus=1``): NCCL cannot run two ranks on one GPU, so
    fractional GPUs are no way out. Without this check the actors that find no GPU stay pending and the
    rendezvous waits forever. ``runtime.device=auto`` falls back to CPU learners (gloo) with a warning; an
    explicit ``cuda`` is a :class:`ConfigError` naming the numbers.
    """
    if device.type != "cuda" or num_learners <= cluster_gpus:
        return device
    if requested == "auto":
        log.warning(
            "runtime.num_learners=%d but the Ray cluster has %g GPU(s): the DDP learners run on CPU (gloo)",
            num_learners,
            cluster_gpus,
        )
        return torch.device("cpu")
    from dspy_rl.config import ConfigError

    raise ConfigError(
        f"runtime.num_learners={num_learners} with runtime.device={requested!r} needs {num_learners} GPUs "
        f"(one per DDP learner actor; NCCL cannot put two ranks on one GPU), but the Ray cluster has "
        f"{cluster_gpus:g}; use runtime.num_learners<={int(cluster_gpus)}, or runtime.device=cpu for gloo DDP"
    )


def learner_class(hp: PPOHyper | GRPOHyper) -> type[PPOLearner]:
    return GRPOEnvLearner if isinstance(hp, GRPOHyper) else PPOLearner


def batch_keys(hp: PPOHyper | GRPOHyper) -> tuple[str, ...]:
    """The rollout arrays the algorithm of ``hp`` trains on."""
    return learner_class(hp).keys


def make_learner(
    spec: dict[str, int],
    hp: PPOHyper | GRPOHyper,
    device: torch.device,
    seed: int,
    mixed_precision: bool,
    compile: bool = False,
) -> PPOLearner:
    return learner_class(hp)(MultiPolicy(**spec), hp, device, seed, mixed_precision, compile)


class _LearnerActor:
    """One DDP rank. Each rank trains on its shard of every batch; DDP averages gradients in backward."""

    def __init__(
        self,
        spec: dict[str, int],
        hp: PPOHyper | GRPOHyper,
        device: str,
        seed: int,
        mixed_precision: bool,
        compile: bool = False,
    ) -> None:
        torch.manual_seed(seed)
        torch.set_num_threads(1)  # one core per learner actor; more threads oversubscribe the node
        self.device = resolve_device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
        self.learner = make_learner(spec, hp, self.device, seed, mixed_precision, compile)
        self.rank = 0
        self.world = 1

    def address(self) -> tuple[str, int]:
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def setup(self, rank: int, world: int, addr: str, port: int) -> None:
        self.rank, self.world = rank, world
        backend = "nccl" if self.device.type == "cuda" else "gloo"
        if addr.startswith("127."):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # single-host run bound to loopback
        torch.distributed.init_process_group(
            backend,
            init_method=f"tcp://{addr}:{port}",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=120),
        )
        ddp = torch.nn.parallel.DistributedDataParallel(
            self.learner.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=isinstance(self.learner, GRPOEnvLearner),  # GRPO trains no critic
        )
        self.learner.wrap(ddp)

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        n = batch["obs"].shape[0] // self.world  # equal shards keep the ranks' step counts in lockstep
        shard = {k: v[self.rank * n : (self.rank + 1) * n] for k, v in batch.items()}
        return self.learner.update(shard)

    def weights(self) -> dict[str, np.ndarray]:
        return state_to_numpy(self.learner.model)

    def state_dict(self) -> dict[str, Any]:
        return self.learner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state)

    def shutdown(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


class LearnerGroup:
    """``num_learners=0``: a PPOLearner in the driver. ``num_learners=K>=1``: K Ray actors with DDP."""

    def __init__(
        self,
        spec: dict[str, int],
        hp: PPOHyper | GRPOHyper,
        num_learners: int,
        device: str,
        seed: int,
        mixed_precision: bool = False,
        compile: bool = False,
    ) -> None:
        self.num_learners = num_learners
        self.keys = batch_keys(hp)
        self.hp = dataclasses.replace(hp, minibatch_size=max(1, hp.minibatch_size // max(1, num_learners)))
        if num_learners == 0:
            self.local = make_learner(spec, hp, resolve_device(device), seed, mixed_precision, compile)
            log.info("LearnerGroup: learner in the driver on %s", self.local.device)
            self.actors: list[Any] = []
            return
        self.local = None
        resolved = resolve_device(device)
        if resolved.type == "cuda":
            resolved = learner_gpu_device(
                resolved, device, num_learners, ray.cluster_resources().get("GPU", 0)
            )
            if resolved.type == "cpu":
                device, mixed_precision = "cpu", False
        gpus = 1 if resolved.type == "cuda" else 0
        cls = ray.remote(_LearnerActor).options(num_cpus=1, num_gpus=gpus)
        # Same seed on every rank: identical initial weights, so DDP's broadcast is a no-op check.
        self.actors = [
            cls.remote(spec, self.hp, device, seed, mixed_precision, compile) for _ in range(num_learners)
        ]
        addr, port = ray.get(self.actors[0].address.remote())
        ray.get([a.setup.remote(r, num_learners, addr, port) for r, a in enumerate(self.actors)])
        log.info(
            "LearnerGroup: %d DDP learners (%s) rendezvous at %s:%d",
            num_learners,
            "nccl" if gpus else "gloo",
            addr,
            port,
        )

    def update(self, batch: dict[str, np.ndarray]) -> dict[str, float]:
        if self.local is not None:
            return self.local.update(batch)
        ref = ray.put({k: batch[k] for k in self.keys})
        return ray.get([a.update.remote(ref) for a in self.actors])[0]

    def weights(self) -> dict[str, np.ndarray]:
        if self.local is not None:
            return state_to_numpy(self.local.model)
        return ray.get(self.actors[0].weights.remote())

    def state_dict(self) -> dict[str, Any]:
        if self.local is not None:
            return self.local.state_dict()
        return ray.get(self.actors[0].state_dict.remote())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.local is not None:
            self.local.load_state_dict(state)
        else:
            ray.get([a.load_state_dict.remote(state) for a in self.actors])

    def shutdown(self) -> None:
        if self.actors:
            ray.get([a.shutdown.remote() for a in self.actors])
            for a in self.actors:
                ray.kill(a)
            self.actors = []
