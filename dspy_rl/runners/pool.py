"""A pool of EnvRunner Ray actors: parallel sampling, replacement of dead actors, resizing."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec

log = logging.getLogger(__name__)
_ACTOR_FAILURES = (RayActorError, ActorDiedError, ActorUnavailableError)


@dataclass
class Pending:
    """Rollouts in flight: one object ref per runner index, and what to resample a lost one with."""

    refs: dict[int, ray.ObjectRef]
    weights_ref: ray.ObjectRef
    args: tuple[Any, ...]
    method: str
    version: int = 0
    """The caller's count of policy updates when the weights were sent (to report the policy lag)."""


class RunnerPool:
    """EnvRunner actors sampling in parallel with the weights broadcast once per iteration.

    A runner whose actor dies (node loss, OOM, ``ray.kill``) is replaced by a fresh one with a new seed and its
    share of the batch is sampled again, so one lost actor costs one rollout, not the run.
    """

    def __init__(
        self,
        env_cfg: dict[str, Any],
        spec: RolloutSpec,
        num_runners: int,
        base_seed: int,
        run_tag: str,
        num_cpus_per_runner: float = 1.0,
    ) -> None:
        if env_cfg.get("num_threads", 0) == 0:
            # "All cores" means the cores this actor reserved: rayon threads beyond them would contend with the
            # learner and the other runners for the CPUs Ray gave those.
            env_cfg = {**env_cfg, "num_threads": max(1, int(num_cpus_per_runner))}
        self.env_cfg, self.spec, self.base_seed, self.run_tag = env_cfg, spec, base_seed, run_tag
        self._cls = ray.remote(num_cpus=num_cpus_per_runner, max_restarts=0)(EnvRunner)
        self._generation: dict[int, int] = {}
        self.runners: dict[int, Any] = {}
        self.replacements = 0
        for i in range(num_runners):
            self._spawn(i)

    def actor_name(self, index: int) -> str:
        return f"dspy_rl_env_runner:{self.run_tag}:{index}"

    def _spawn(self, index: int) -> None:
        gen = self._generation.get(index, -1) + 1
        self._generation[index] = gen
        seed = self.base_seed + 1000 * index + 1_000_003 * gen
        self.runners[index] = self._cls.options(name=self.actor_name(index)).remote(
            self.env_cfg, RolloutSpec(**asdict(self.spec)), seed
        )

    def __len__(self) -> int:
        return len(self.runners)

    def submit(self, weights_ref: ray.ObjectRef, *args: Any, method: str = "sample") -> Pending:
        """Start one rollout on every runner (``EnvRunner.<method>(weights, *args)``) without waiting."""
        refs = {i: getattr(r, method).remote(weights_ref, *args) for i, r in self.runners.items()}
        return Pending(refs, weights_ref, args, method)

    def collect(self, pending: Pending) -> list[dict[str, Any]]:
        """Wait for a :meth:`submit`; a runner that died is replaced and its rollout sampled again (once)."""
        results: list[dict[str, Any]] = []
        for i, ref in pending.refs.items():
            try:
                results.append(ray.get(ref))
            except _ACTOR_FAILURES as exc:
                log.warning("EnvRunner %d died; starting a replacement: %s", i, exc)
                self._kill_quietly(i)
                self._spawn(i)
                self.replacements += 1
                retry = getattr(self.runners[i], pending.method).remote(pending.weights_ref, *pending.args)
                results.append(ray.get(retry))
        return results

    def sample(self, weights_ref: ray.ObjectRef, *args: Any, method: str = "sample") -> list[dict[str, Any]]:
        """One rollout from every runner, waited for (:meth:`submit` then :meth:`collect`)."""
        return self.collect(self.submit(weights_ref, *args, method=method))

    def resize(self, target: int) -> None:
        """Grow or shrink the pool to ``target`` runners (at least one); call it with nothing in flight."""
        target = max(1, target)
        for i in range(len(self.runners), target):
            self._spawn(i)
        for i in sorted(self.runners)[target:]:
            self._kill_quietly(i)
            del self.runners[i]

    def _kill_quietly(self, index: int) -> None:
        try:
            ray.kill(self.runners[index], no_restart=True)
        except Exception:  # already gone
            pass

    def shutdown(self) -> None:
        for i in list(self.runners):
            self._kill_quietly(i)
        self.runners.clear()
