"""The env trainer: multi-policy PPO / env GRPO on the Rust ToolEnv with EnvRunner actors and a LearnerGroup.

Programmatic: ``run_training(overrides, report=None) -> dict`` (used by ``dspy-rl train``, sweeps and tests).

With ``eval_episodes=N`` the trained policy (the last checkpoint) is evaluated on N episodes of separately seeded
envs once training ends; ``eval_success_rate`` and ``eval_return`` join the result, metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.envs.objectives import OBJECTIVES
from dspy_rl.envs.padded import PadSpec
from dspy_rl.learners.grpo_env import GRPOHyper
from dspy_rl.learners.learner_group import LearnerGroup, batch_keys
from dspy_rl.learners.ppo import PPOHyper
from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec, env_info, make_env
from dspy_rl.trainer.config import TrainConfig
from dspy_rl.trainer.curriculum import Curriculum, curriculum_overrides
from dspy_rl.utils.checkpoint import (
    FORMAT_VERSION,
    checkpoint_version,
    latest_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
    upgrade_checkpoint,
)
from dspy_rl.utils.convergence import PlateauDetector
from dspy_rl.utils.device import resolve_device
from dspy_rl.utils.finite import nonfinite_terms, raise_if_nonfinite
from dspy_rl.utils.ray_local import init_ray
from dspy_rl.utils.run_dir import new_run_dir, write_config
from dspy_rl.utils.run_logger import Panel, RunLogger
from dspy_rl.utils.run_status import write_status

log = logging.getLogger(__name__)

#: Default ``eval_seed`` offset from ``env.seed``: no ``env.seed + 1000 * runner + 7919 * resume_iteration`` hits it.
EVAL_SEED_OFFSET = 1_000_007

ALIASES = {
    "suite": "env.suite",
    "steps": "total_env_steps",
    "runners": "runtime.num_env_runners",
    "learners": "runtime.num_learners",
    "device": "runtime.device",
    "lr": "algo.lr",
    "run_dir": "run_dir",
    "resume": "resume",
    "seed": "seed",
    # The seeds' names (README "Seed command names"):
    "workers": "runtime.num_env_runners",
    "n_envs": "env.num_envs",
    "episode_len": "env.episode_len",
    "actions": "env.actions",
    "environment": "env",
    "batch_size": "algo.minibatch_size",
    "mixed_precision": "runtime.mixed_precision",
    "tensorboard": "logging.tensorboard",
    "wandb": "logging.wandb",
    "wandb_project": "logging.wandb_project",
    "timeout": "runtime.runner_timeout_s",
    "compile_model": "runtime.compile",
}

#: Seed flags of ``train`` that map to no single key: what replaced them.
RETIRED = {
    "episodes": "training is budgeted in env steps: pass --steps N (total_env_steps=N); "
    "dspy-rl eval takes --episodes",
    "gpus": "pass runtime.device=cuda and runtime.num_learners=N (one GPU per learner actor)",
    "framework": "there is one framework (PyTorch learners on Ray): choose the algorithm with algo=ppo|grpo|gigpo",
    "gradient_checkpointing": "a text-GRPO setting, not of env training: see dspy-rl grpo train --help",
    "trials": "a sweep setting: dspy-rl sweep --trials N",
    "max_concurrent": "a sweep setting: dspy-rl sweep --max-concurrent N",
    "kafka_bootstrap": "a stream setting: dspy-rl stream train --kafka-bootstrap HOST:PORT",
}


def load_config(argv: Sequence[str] = ()) -> TrainConfig:
    """Compose conf/train.yaml with the command line and validate it (before Ray starts)."""
    return to_object(compose("train", curriculum_overrides(argv), ALIASES, retired=RETIRED), TrainConfig)


#: learning_curve.png of a run: success rate, and the returns of the episode and of policies A and B.
CURVE_PANELS: tuple[Panel, ...] = (
    ("Success rate", "success rate", ("success_rate",)),
    ("Episode return (A: first tool, B: later tools)", "return", ("episode_return", "return_A", "return_B")),
)


def _progress_postfix(m: dict[str, Any]) -> str:
    # tqdm's own rate (env steps/s, smoothed) is on the bar; one iteration's rate reads low on a partial batch
    return (
        f"success={m.get('success_rate', 0):.2f} "
        f"ret A/B/C={m.get('return_A', 0):.1f}/{m.get('return_B', 0):.1f}/{m.get('return_C', 0):.1f}"
    )


@dataclass
class _Progress:
    """The run's counters and rolling episode statistics (saved in every checkpoint)."""

    iteration: int = 0
    env_steps: int = 0
    recent_success: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    recent_return: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    last: dict[str, Any] = field(
        default_factory=lambda: {"success_rate": 0.0, "episode_return": 0.0, "wall_s": 0.0}
    )
    """The latest iteration's metrics."""
    first_90: dict[str, Any] | None = None
    """Env step and wall time at which the settled rolling success rate first reached 0.9 (this session)."""
    last_ckpt: int = -1
    """Iteration of the latest checkpoint this session wrote."""
    settled_once: bool = False
    """The rolling success rate has been free of the early-episode bias (in this curriculum stage)."""


@dataclass
class _Session:
    """What one session of a run builds: the runners, the learners, and the sampling requests in flight."""

    pool: Any
    """The RunnerPool of EnvRunner actors, or None when sampling in this process."""
    local_runner: EnvRunner | None
    info: dict[str, Any]
    model_spec: dict[str, int]
    hp: PPOHyper | GRPOHyper
    grpo: bool
    learners: LearnerGroup
    controller: Callable[[float, float, int], int] | None
    overlap: bool
    """Sample the next batch while the learners train on this one."""
    group_args: tuple[Any, ...] = ()
    """GRPO/GiGPO: (group_size, step_weight, gamma) for EnvRunner.sample_groups."""
    plateau: PlateauDetector | None = None
    pending: Any = None
    resize_to: int | None = None

    def shutdown(self) -> None:
        self.learners.shutdown()
        if self.pool is not None:
            self.pool.shutdown()


class Trainer:
    """Owns the run directory, the runners, the learner group and the loop."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.runtime.device)
        self._stop_signal: int | None = None
        self.resume_state: dict[str, Any] | None = None
        self.curriculum = (
            Curriculum(cfg.curriculum, cfg.env.num_envs * max(1, cfg.runtime.num_env_runners))
            if cfg.curriculum.suites
            else None
        )
        if cfg.resume:
            found = load_latest_checkpoint(cfg.resume)  # falls back past checkpoints that do not load
            if found is None:
                raise ConfigError(
                    f"resume={cfg.resume!r} has no checkpoint under checkpoints/; "
                    "pass the run directory of an earlier `dspy-rl train`"
                )
            ckpt, loaded = found
            self.resume_state = upgrade_checkpoint(loaded, f"resume={cfg.resume!r}: {ckpt.name}")
            if self.resume_state is not loaded:
                log.info(
                    "%s: converted checkpoint format version %d to %d (per-tensor Adam states -> one flat state "
                    "per policy); the file on disk is unchanged",
                    ckpt.name,
                    checkpoint_version(loaded),
                    FORMAT_VERSION,
                )
            self.run_dir = Path(cfg.resume)
            if self.curriculum is not None and "curriculum" in self.resume_state:
                try:
                    self.curriculum.load_state_dict(self.resume_state["curriculum"])
                except ValueError as exc:
                    raise ConfigError(f"resume={cfg.resume!r}: {exc}") from None
            log.info(
                "resuming %s from %s (env step %d)", self.run_dir, ckpt.name, self.resume_state["env_steps"]
            )
            self.run_dir = new_run_dir(self.run_dir, "train")
        else:
            self.run_dir = new_run_dir(cfg.run_dir, "train")
        write_config(self.run_dir, cfg.to_dict())

    # -- setup -------------------------------------------------------------------------------------------
    def _env_cfg(self, seed_offset: int) -> dict[str, Any]:
        env = asdict(self.cfg.env)
        env["seed"] = env["seed"] + seed_offset
        if self.curriculum is not None:  # the stage's suite, padded to the largest suite of the curriculum
            env["suite"] = self.curriculum.suite
            env["pad"] = PadSpec.of_suites(self.cfg.curriculum.suites).to_dict()
        return env

    def _start_ray(self) -> None:
        import ray

        rt = self.cfg.runtime
        if rt.num_env_runners == 0 and rt.num_learners == 0 and rt.ray_address is None:
            return  # everything runs in this process
        if not ray.is_initialized():
            need = rt.num_env_runners + rt.num_learners + 1
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
            if rt.ray_address is None and not os.environ.get("RAY_ADDRESS"):  # not inside `ray job submit`
                kwargs["num_cpus"] = rt.num_cpus or max(os.cpu_count() or 1, need)
            init_ray(rt.ray_address, rt.node_ip, **kwargs)  # local Ray listens on 127.0.0.1 only

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handler(signum: int, _frame: Any) -> None:
            log.warning(
                "received %s: checkpointing and stopping after this iteration", signal.Signals(signum).name
            )
            self._stop_signal = signum

        for s in previous:
            signal.signal(s, handler)

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        return restore

    # -- loop --------------------------------------------------------------------------------------------
    def run(self, report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Train until ``total_env_steps`` (or ``target_success``, or SIGTERM/SIGINT); ``report`` gets each
        iteration's metrics. Returns the last metrics with ``status``, ``run_dir`` and ``reached_0.9``."""
        cfg = self.cfg
        progress = self._seed_and_restore()
        self._start_ray()
        if self.device.type == "cpu" and cfg.runtime.num_learners == 0:
            # Small-batch PPO gains little from intra-op threads, and OpenMP threads that spin while another
            # process (an EnvRunner, another job) holds a core slow the learner down by 10x and more.
            torch.set_num_threads(cfg.runtime.torch_threads)
        session = self._build_session(progress.iteration)
        logger = RunLogger(
            self.run_dir,
            cfg.logging,
            cfg.total_env_steps,
            progress.env_steps,
            cfg.to_dict(),
            postfix=_progress_postfix,
            panels=CURVE_PANELS,
        )
        restore_signals = self._install_signal_handlers()
        status = "completed"
        write_status(self.run_dir, "running", kind="train", total_env_steps=cfg.total_env_steps)
        try:
            status = self._loop(session, progress, logger, report)
            if progress.last_ckpt != progress.iteration:
                self._checkpoint(session, progress)
            if cfg.eval_episodes > 0 and self._stop_signal is None:
                evaluation = self.evaluate_final()
                progress.last.update(evaluation)
                logger.log(progress.env_steps, evaluation)
                if report is not None:
                    report(dict(progress.last))
        finally:
            restore_signals()
            logger.close()
            session.shutdown()
        return self._result(progress, status)

    def _seed_and_restore(self) -> _Progress:
        """Seed torch, numpy and random; on resume restore their states and the run's counters."""
        state = self.resume_state
        torch.manual_seed(self.cfg.seed)
        np.random.seed(self.cfg.seed)
        random.seed(self.cfg.seed)
        progress = _Progress()
        if state:
            torch.set_rng_state(state["rng"]["torch"])
            np.random.set_state(state["rng"]["numpy"])
            random.setstate(state["rng"]["python"])
            progress.iteration, progress.env_steps = state["iteration"], state["env_steps"]
            progress.recent_success.extend(state.get("recent_success", []))
            progress.recent_return.extend(state.get("recent_return", []))
        progress.last.update(env_steps=progress.env_steps, iteration=progress.iteration)
        return progress

    def _build_session(self, iteration: int) -> _Session:
        """Runners (Ray actors, or one in this process), the learner group (restored on resume), the controller."""
        cfg, rt, algo = self.cfg, self.cfg.runtime, self.cfg.algo
        weights = cfg.objectives.vector()
        spec = RolloutSpec(
            algo.rollout_len,
            algo.gamma,
            algo.gae_lambda,
            algo.hidden,
            None if (weights == 1).all() else tuple(weights.tolist()),
        )
        # Fresh env streams after a resume, so a resumed run does not replay the episodes it already saw.
        offset = 7919 * iteration
        pool, local_runner = None, None
        if rt.num_env_runners > 0:
            from dspy_rl.runners.pool import RunnerPool

            pool = RunnerPool(
                self._env_cfg(offset),
                spec,
                rt.num_env_runners,
                cfg.env.seed + offset,
                run_tag=f"{os.getpid()}-{id(self)}",
                timeout_s=rt.runner_timeout_s,
                resources={rt.runner_resource: 1.0} if rt.runner_resource else None,
            )
            # The actors start in the background (seconds: a Python process importing torch), and building the
            # learner takes seconds too (the optimizers import torch._dynamo): read the env's dimensions from a
            # one-env probe instead of from an actor, so that the two overlap.
            probe = make_env({**self._env_cfg(offset), "num_envs": 1, "num_threads": 1}, cfg.env.seed)
            info = env_info(probe) | {"num_envs": cfg.env.num_envs}
        else:
            local_runner = EnvRunner(
                self._env_cfg(offset), spec, cfg.env.seed + offset, torch_threads=torch.get_num_threads()
            )
            info = local_runner.env_info()
        model_spec = {k: info[k] for k in ("obs_dim", "num_tools", "num_args")} | {"hidden": algo.hidden}
        grpo = algo.name in ("grpo", "gigpo")  # gigpo: GRPO's learner, GiGPO's advantages (in the runners)
        group_args = (algo.group_size, algo.step_weight if algo.name == "gigpo" else 0.0, algo.gamma)
        hp = GRPOHyper.from_config(algo) if grpo else PPOHyper.from_config(algo)
        learners = LearnerGroup(
            model_spec,
            hp,
            rt.num_learners,
            rt.device,
            cfg.seed,
            rt.mixed_precision and self.device.type == "cuda",
            rt.compile,
        )
        if self.resume_state:
            learners.load_state_dict(self.resume_state["learner"])
        controller = (
            self._make_runner_controller(rt.num_env_runners)
            if (pool is not None and rt.adaptive_runners)
            else None
        )
        # With runner actors, the next rollout is sampled while the learner trains on this one (the policy lags
        # one update behind, which PPO's ratio clipping absorbs); sampling and learning then overlap on two cores.
        overlap = pool is not None and rt.async_sampling
        plateau = PlateauDetector(cfg.convergence) if cfg.convergence.enabled else None
        return _Session(
            pool, local_runner, info, model_spec, hp, grpo, learners, controller, overlap, group_args, plateau
        )

    def _loop(
        self,
        s: _Session,
        p: _Progress,
        logger: RunLogger,
        report: Callable[[dict[str, Any]], None] | None,
    ) -> str:
        """Iterate until a stop condition; returns the run's status."""
        cfg = self.cfg
        start = time.perf_counter()
        while p.env_steps < cfg.total_env_steps:
            t_sample, t_learn, new_steps = self._iterate(s, p, start)
            # Before every env has run episode_len steps, only episodes that succeeded early have ended: the
            # rolling rate is biased high until then, so milestones and the early stop wait for it.
            envs_total = cfg.env.num_envs * p.last["num_env_runners"]
            settled = len(p.recent_success) >= 200 and p.env_steps >= s.info["episode_len"] * envs_total
            cur = self.curriculum
            promoted = cur is not None and bool(p.last.pop("promoted", 0.0))
            if cur is not None:  # the rolling rate restarts with each stage (and its bias with it)
                settled = (
                    len(p.recent_success) >= 200
                    and p.env_steps - cur.stage_start_step >= cur.episode_lens[cur.stage] * envs_total
                    and not promoted
                )
            # 1 once the rolling rate is free of the early-episode bias; the learning-curve plot starts there
            p.settled_once = p.settled_once or settled
            p.last["success_settled"] = float(p.settled_once)
            if cur is not None:  # milestones and the early stop are about the last suite
                settled = settled and cur.last_stage
            if p.first_90 is None and settled and p.last["success_rate"] >= 0.9:
                p.first_90 = {"env_steps": p.env_steps, "wall_s": p.last["wall_s"]}
            if p.iteration % cfg.logging.log_every == 0 or p.env_steps >= cfg.total_env_steps:
                logger.log(p.env_steps, p.last)
            logger.advance(new_steps, p.last)
            if report is not None:
                report(dict(p.last))
            if s.controller is not None:
                self._resize(s, t_sample, t_learn, p.last["num_env_runners"])
            if p.iteration % cfg.checkpoint_every == 0:
                self._checkpoint(s, p)
            if promoted:
                self._promote(s, p)
            if s.plateau is not None:
                reason = s.plateau.update(p.last.get(cfg.convergence.metric, float("nan")), p.env_steps)
                if reason is not None and (cur is None or cur.last_stage):
                    p.last["converged_reason"] = reason
                    log.info("converged at env step %d: %s", p.env_steps, reason)
                    return "converged"
            if self._stop_signal is not None:
                return f"interrupted by {signal.Signals(self._stop_signal).name}"
            if cfg.target_success is not None and settled and p.last["success_rate"] >= cfg.target_success:
                return "reached target_success"
        return "completed"

    def _promote(self, s: _Session, p: _Progress) -> None:
        """Move every runner to the curriculum's next suite (same padded layout, same weights)."""
        import ray

        cur = self.curriculum
        assert cur is not None
        event = cur.events[-1]
        log.info(
            "curriculum: %s -> %s at env step %d (rolling success %.3f)",
            event["from"],
            event["to"],
            p.env_steps,
            event["success_rate"],
        )
        if s.pool is not None:
            if s.pending is not None:  # sampled on the previous suite: dropped, not trained or counted
                s.pool.collect(s.pending)
                s.pending = None
            s.pool.env_cfg = {**s.pool.env_cfg, "suite": cur.suite}
            s.pool.sample(ray.put(None), cur.suite, method="set_suite")
        else:
            assert s.local_runner is not None
            s.local_runner.set_suite(None, cur.suite)
        p.recent_success.clear()
        p.recent_return.clear()
        p.settled_once = False
        self._checkpoint(s, p)

    def _iterate(self, s: _Session, p: _Progress, start: float) -> tuple[float, float, int]:
        """One iteration: collect rollouts, update the learners, advance the counters and ``p.last``.
        Returns the sampling and learning times and the env steps it added."""
        cfg = self.cfg
        t0 = time.perf_counter()
        rollouts, policy_lag = self._collect(s, p)
        t_sample = time.perf_counter() - t0
        batch = {k: np.concatenate([r[k] for r in rollouts]) for k in batch_keys(s.hp)}
        remaining = cfg.total_env_steps - p.env_steps
        if not s.grpo and batch["obs"].shape[0] > remaining:
            batch = {k: v[:remaining] for k, v in batch.items()}
        # GRPO counts every env step executed (idle steps of finished envs included), not just trained ones.
        new_steps = sum(r["stats"]["env_steps"] for r in rollouts) if s.grpo else batch["obs"].shape[0]
        if s.overlap and p.env_steps + new_steps < cfg.total_env_steps:
            s.pending = self._submit(s, p.env_steps + new_steps, p.iteration)
        t1 = time.perf_counter()
        train_metrics = s.learners.update(batch)
        t_learn = time.perf_counter() - t1
        if nonfinite_terms(train_metrics):  # stop before logging or checkpointing the NaN state
            good = latest_checkpoint(self.run_dir)
            raise_if_nonfinite(
                train_metrics,
                f"iteration {p.iteration + 1} (env steps {p.env_steps}-{p.env_steps + new_steps})",
                f"the last good checkpoint {good} is kept" if good else "no checkpoint was written",
            )
        p.env_steps += new_steps
        p.iteration += 1
        stats = [r["stats"] for r in rollouts]
        for st in stats:
            p.recent_success.extend(st["episode_success"].astype(float).tolist())
            p.recent_return.extend(st["episode_return"].tolist())
        now = time.perf_counter()
        p.last = self._metrics(
            stats,
            train_metrics,
            p.recent_success,
            p.recent_return,
            p.env_steps,
            p.iteration,
            new_steps,
            now - t0,
            t_sample,
            t_learn,
            now - start,
            len(rollouts),
        )
        objective_terms = [st["objectives"] for st in stats if len(st["objectives"])]
        if objective_terms:  # per-episode sum of each global objective's reward term
            per_objective = np.concatenate(objective_terms).mean(axis=0)
            p.last.update(
                {f"objective/{k}": float(v) for k, v in zip(OBJECTIVES, per_objective, strict=True)}
            )
        for key in ("anchored_step_frac", "step_adv_abs"):  # GiGPO's grouping
            if key in stats[0]:
                p.last[key] = float(np.mean([st[key] for st in stats]))
        if self.curriculum is not None:
            ended = np.concatenate([st["episode_success"] for st in stats])
            p.last["promoted"] = float(self.curriculum.observe(ended, p.env_steps))
            p.last["curriculum_stage"] = self.curriculum.stage
            p.last["curriculum_success_rate"] = self.curriculum.success_rate()
        p.last["runner_replacements"] = s.pool.replacements if s.pool is not None else 0
        p.last["policy_lag"] = policy_lag  # updates between the sampling weights and the trained ones
        return t_sample, t_learn, new_steps

    def _rollout_steps(self, trained_steps: int, n_runners: int) -> int:
        """Steps per env of the next PPO batch: the last one samples only what is left, so the run ends at exactly
        total_env_steps."""
        per_step = self.cfg.env.num_envs * n_runners
        return min(self.cfg.algo.rollout_len, -(-(self.cfg.total_env_steps - trained_steps) // per_step))

    def _submit(self, s: _Session, trained_steps: int, iteration: int) -> Any:
        """Ask every runner actor for its share of the next batch, sampled with the current weights."""
        import ray

        assert s.pool is not None
        weights = ray.put(s.learners.weights())
        if s.grpo:  # one whole episode per env, in snapshot groups
            request = s.pool.submit(weights, *s.group_args, method="sample_groups")
        else:
            request = s.pool.submit(weights, self._rollout_steps(trained_steps, len(s.pool)), method="sample")
        request.version = iteration
        return request

    def _collect(self, s: _Session, p: _Progress) -> tuple[list[dict[str, Any]], int]:
        """This iteration's rollouts (one per runner) and their policy lag in updates."""
        if s.pool is not None:
            request = s.pending if s.pending is not None else self._submit(s, p.env_steps, p.iteration)
            rollouts, s.pending = s.pool.collect(request), None
            if s.resize_to is not None:
                s.pool.resize(s.resize_to)
                s.resize_to = None
            return rollouts, p.iteration - request.version
        assert s.local_runner is not None
        if s.grpo:
            return [s.local_runner.sample_groups(s.learners.weights(), *s.group_args)], 0
        return [s.local_runner.sample(s.learners.weights(), self._rollout_steps(p.env_steps, 1))], 0

    def _resize(self, s: _Session, t_sample: float, t_learn: float, n_runners: int) -> None:
        """Let the controller size the runner pool (after the rollouts in flight, if any, are collected)."""
        assert s.controller is not None and s.pool is not None
        s.resize_to = s.controller(t_sample, t_learn, n_runners)
        if s.pending is None:
            s.pool.resize(s.resize_to)
            s.resize_to = None

    def _checkpoint(self, s: _Session, p: _Progress) -> None:
        save_checkpoint(
            self.run_dir,
            p.iteration,
            {
                "format_version": FORMAT_VERSION,
                "iteration": p.iteration,
                "env_steps": p.env_steps,
                "config": self.cfg.to_dict(),
                "model_spec": s.model_spec,
                "learner": s.learners.state_dict(),
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": np.random.get_state(),
                    "python": random.getstate(),
                },
                "recent_success": list(p.recent_success),
                "recent_return": list(p.recent_return),
                **({"curriculum": self.curriculum.state_dict()} if self.curriculum is not None else {}),
            },
        )
        p.last_ckpt = p.iteration

    def _result(self, p: _Progress, status: str) -> dict[str, Any]:
        last = p.last
        last["status"] = status
        write_status(self.run_dir, status, kind="train", env_steps=p.env_steps)
        last["run_dir"] = str(self.run_dir)
        last["reached_0.9"] = (
            p.first_90
        )  # first point where the rolling success rate was >= 0.9 (this session)
        log.info(
            "%s at env step %d: success %.3f, return %.2f (%s)",
            status,
            p.env_steps,
            last["success_rate"],
            last["episode_return"],
            self.run_dir,
        )
        return last

    def evaluate_final(self) -> dict[str, float]:
        """Evaluate the run's last checkpoint on ``eval_episodes`` episodes of fresh envs (``eval_seed``).

        Uses ``dspy-rl eval``'s episode accounting (a fixed episode quota per env slot) on the policy exactly as
        checkpointed; sampled actions draw from a torch generator seeded with the eval seed, so the result is
        reproducible and the training RNG streams are left untouched.
        """
        from dspy_rl.evaluation import EvalConfig, evaluate

        cfg = self.cfg
        ckpt = latest_checkpoint(self.run_dir)
        if ckpt is None:
            raise RuntimeError(f"no checkpoint under {self.run_dir} to evaluate")
        seed = cfg.eval_seed if cfg.eval_seed is not None else cfg.env.seed + EVAL_SEED_OFFSET
        suite = (
            cfg.curriculum.suites[-1] if cfg.curriculum.suites else cfg.env.suite
        )  # a curriculum's last stage
        eval_cfg = EvalConfig(
            env=replace(cfg.env, seed=seed, suite=suite),
            policy="checkpoint",
            checkpoint=str(ckpt),
            episodes=cfg.eval_episodes,
            greedy=cfg.eval_greedy,
            seed=seed,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            res = evaluate(eval_cfg)
        log.info(
            "final eval of %s: success %.3f, return %.2f over %d episodes (%s, seed %d, %.1fs)",
            ckpt.name,
            res.success_rate,
            res.mean_return,
            res.episodes,
            "greedy" if cfg.eval_greedy else "sampled",
            seed,
            res.seconds,
        )
        return {
            "eval_success_rate": res.success_rate,
            "eval_return": res.mean_return,
            "eval_episode_length": res.mean_length,
            "eval_episodes": res.episodes,
            "eval_env_steps": res.env_steps,
            "eval_s": res.seconds,
        }

    @staticmethod
    def _metrics(
        stats: list[dict[str, Any]],
        train: dict[str, float],
        recent_success: deque[float],
        recent_return: deque[float],
        env_steps: int,
        iteration: int,
        new_steps: int,
        dt: float,
        t_sample: float,
        t_learn: float,
        wall: float,
        n_runners: int,
    ) -> dict[str, Any]:
        def mean(key: str) -> float:
            parts = [s[key] for s in stats if len(s[key])]
            return float(np.concatenate(parts).mean()) if parts else float("nan")

        return {
            "env_steps": env_steps,
            "iteration": iteration,
            "wall_s": wall,
            "success_rate": float(np.mean(recent_success)) if recent_success else 0.0,
            "episode_return": float(np.mean(recent_return)) if recent_return else 0.0,
            "iter_success_rate": mean("episode_success"),
            "episode_length": mean("episode_length"),
            "return_A": mean("return_A"),
            "return_B": mean("return_B"),
            "return_C": mean("episode_return"),
            "env_steps_per_s": new_steps / dt,
            "sample_s": t_sample,
            "learn_s": t_learn,
            "num_env_runners": n_runners,
            **train,
        }

    def _make_runner_controller(self, current: int) -> Callable[[float, float, int], int]:
        """Adaptive concurrency controller sizing the EnvRunner pool (synchronous loop).

        The learner waits on rollouts for the whole sampling phase (``wait = t_sample / t_iter``): starved learners
        grow the pool. Finished rollouts wait while the learner trains; ``t_learn / t_sample`` is that queue in
        rollout-batch units, and above the watermark the pool shrinks.
        """
        from dspy_rl.control.limiter import LimiterConfig
        from dspy_rl.control.pool import PoolSizer

        rt = self.cfg.runtime
        sizer = PoolSizer(
            LimiterConfig(
                mode="aimd",
                base_limit=max(1, current),
                min_limit=1,
                max_limit=rt.max_env_runners,
                adaptation_interval=0,
                queue_high_watermark=2.0,
                decrease_step=0.5,
            ),
            starve_threshold=0.5,
        )

        def target(t_sample: float, t_learn: float, n: int) -> int:
            total = max(t_sample + t_learn, 1e-9)
            return sizer.update(n, t_sample / total, t_learn / max(t_sample, 1e-9))

        return target


def run_training(
    overrides: Sequence[str] = (), report: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Train with Hydra ``overrides`` of conf/train.yaml; ``report`` gets each iteration's metrics."""
    return Trainer(load_config(overrides)).run(report)
