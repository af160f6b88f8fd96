"""A pool of EnvRunner Ray actors: parallel sampling, replacement of dead actors, resizing."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec

log = logging.getLogger(__name__)
_ACTOR_FAILURES = (RayActorError, ActorDiedError, ActorUnavailableError)
MAX_REPLACEMENTS = 3
"""Replacements of one runner within one collect before the pool gives up (RunnerFailure)."""


@dataclass
class Pending:
    """Rollouts in flight: one object ref per runner index, and what to resample a lost one with."""

    refs: dict[int, ray.ObjectRef]
    weights_ref: ray.ObjectRef
    args: tuple[Any, ...]
    method: str
    version: int = 0
    """The caller's count of policy updates when the weights were sent (to report the policy lag)."""
    started: dict[int, float] = field(default_factory=dict)
    """``time.monotonic()`` at which each runner's rollout was requested (for ``timeout_s``)."""


class RunnerFailure(RuntimeError):
    """A runner failed again after being replaced: the run cannot make progress."""


class RunnerPool:
    """EnvRunner actors sampling in parallel with the weights broadcast once per iteration.

    A runner whose actor dies (node loss, OOM, ``ray.kill``) or does not return its rollout within ``timeout_s``
    (a hung process, a partitioned node) is killed and replaced by a fresh one with a new seed, and its share of the
    batch is sampled again, so one lost actor costs one rollout, not the run.

    ``resources`` are custom Ray resources every runner asks for (to place them on the nodes that offer them);
    once no live node offers them any more (that node was lost), replacements are placed without them.
    """

    def __init__(
        self,
        env_cfg: dict[str, Any],
        spec: RolloutSpec,
        num_runners: int,
        base_seed: int,
        run_tag: str,
        num_cpus_per_runner: float = 1.0,
        timeout_s: float | None = None,
        resources: dict[str, float] | None = None,
    ) -> None:
        if env_cfg.get("num_threads", 0) == 0:
            # "All cores" means the cores this actor reserved: rayon threads beyond them would contend with the
            # learner and the other runners for the CPUs Ray gave those.
            env_cfg = {**env_cfg, "num_threads": max(1, int(num_cpus_per_runner))}
        self.env_cfg, self.spec, self.base_seed, self.run_tag = env_cfg, spec, base_seed, run_tag
        self._cls = ray.remote(num_cpus=num_cpus_per_runner, max_restarts=0)(EnvRunner)
        self.timeout_s = timeout_s
        self.resources = dict(resources or {})
        self._generation: dict[int, int] = {}
        self._starting: dict[int, tuple[ray.ObjectRef, float]] = {}
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
        options: dict[str, Any] = {"name": self.actor_name(index)}
        if self.resources and gen > 0 and not self._resources_offered():
            log.warning(
                "no live node offers %s any more: EnvRunner %d goes to any node", self.resources, index
            )
            self.resources = {}
        if self.resources:
            options["resources"] = self.resources
        self.runners[index] = self._cls.options(**options).remote(
            self.env_cfg, RolloutSpec(**asdict(self.spec)), seed
        )
        self._starting[index] = (self.runners[index].__ray_ready__.remote(), time.monotonic())

    def _was_starting(self, index: int) -> bool:
        """Whether runner ``index`` was still starting (placement, imports) when last checked and has not been
        starting for longer than ``timeout_s`` (an actor that cannot be placed counts as hung too)."""
        if index not in self._starting:
            return False
        ref, spawned = self._starting[index]
        if ray.wait([ref], timeout=0)[0]:
            del self._starting[index]
            return True
        return time.monotonic() - spawned < (self.timeout_s or 0.0)

    def _resources_offered(self) -> bool:
        """Whether some live node has every custom resource the runners ask for."""
        for node in ray.nodes():
            total = node.get("Resources", {}) if node.get("Alive") else {}
            if all(total.get(k, 0.0) >= v for k, v in self.resources.items()):
                return True
        return False

    def __len__(self) -> int:
        return len(self.runners)

    def submit(self, weights_ref: ray.ObjectRef, *args: Any, method: str = "sample") -> Pending:
        """Start one rollout on every runner (``EnvRunner.<method>(weights, *args)``) without waiting."""
        now = time.monotonic()
        refs = {i: getattr(r, method).remote(weights_ref, *args) for i, r in self.runners.items()}
        return Pending(refs, weights_ref, args, method, started={i: now for i in refs})

    def collect(self, pending: Pending) -> list[dict[str, Any]]:
        """Wait for a :meth:`submit`. A runner that died, or that has not returned ``timeout_s`` after its request,
        is killed and replaced, and its rollout sampled again; a runner that fails MAX_REPLACEMENTS times raises RunnerFailure."""
        results: dict[int, dict[str, Any]] = {}
        refs, started = dict(pending.refs), dict(pending.started)
        attempts: dict[int, int] = {}
        while refs:
            wait_s = None
            if self.timeout_s is not None:
                now = time.monotonic()
                wait_s = max(0.0, min(started.get(i, now) + self.timeout_s for i in refs) - now)
            ready, _ = ray.wait(list(refs.values()), num_returns=1, timeout=wait_s)
            by_ref = {ref: i for i, ref in refs.items()}
            if ready:
                i = by_ref[ready[0]]
                try:
                    results[i] = ray.get(refs.pop(i))
                    continue
                except _ACTOR_FAILURES as exc:
                    failed, reason = [i], f"died ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            else:
                now, failed = time.monotonic(), []
                for i in refs:
                    if now - started.get(i, now) < (self.timeout_s or 0.0):
                        continue
                    if self._was_starting(i):
                        started[i] = now  # a fresh actor's clock starts once it is up (placement, imports)
                    else:
                        failed.append(i)
                reason = f"did not return its rollout within runtime.runner_timeout_s={self.timeout_s}"
            for i in failed:
                attempts[i] = attempts.get(i, 0) + 1
                if attempts[i] > MAX_REPLACEMENTS:
                    raise RunnerFailure(f"EnvRunner {i} {reason}, also after {MAX_REPLACEMENTS} replacements")
                log.warning(
                    "EnvRunner %d %s; killing it and sampling its rollout on a replacement", i, reason
                )
                self._kill_quietly(i)
                self._spawn(i)
                self.replacements += 1
                refs[i] = getattr(self.runners[i], pending.method).remote(pending.weights_ref, *pending.args)
                started[i] = time.monotonic()
        return [results[i] for i in pending.refs]

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
            self._starting.pop(i, None)

    def _kill_quietly(self, index: int) -> None:
        try:
            ray.kill(self.runners[index], no_restart=True)
        except Exception:  # already gone
            pass

    def shutdown(self) -> None:
        for i in list(self.runners):
            self._kill_quietly(i)
        self.runners.clear()
