"""``dspy-rl grpo train``: a whole run (run directory, data source, policy, loop, metrics, checkpoints, resume).

Run directory layout::

    config.yaml          resolved config of the first start (config.resume-<step>.yaml for each resume)
    dataset_report.json  offline mode: line/group counts, bad lines with reasons
    model/               the initial policy (architecture + tokenizer/vocab); resume rebuilds from it
    checkpoints/         ckpt_<step>.pt (atomic; the latest three) and ``latest``, with optimizer, scheduler,
                         sampler and RNG state
    metrics.jsonl, tb/   metrics (JSON lines and TensorBoard events)
    final/               the trained policy, loadable with model=<run_dir>/final
    learning_curve.png   mean reward per step

The run directory, checkpoints, metrics, plots and device are the run infrastructure env training uses too
(:mod:`dspy_rl.utils`).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dspy_rl.config import ConfigError, asdict
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.dataset import GroupSampler, flatten_groups, load_groups
from dspy_rl.grpo.heldout import ranking_metrics, split_groups
from dspy_rl.grpo.objectives import ObjectiveReward
from dspy_rl.grpo.online import evaluate, sample_groups
from dspy_rl.grpo.policy import build_policy, enable_gradient_checkpointing, load_policy
from dspy_rl.grpo.rewards import RewardFn, resolve_reward_fn
from dspy_rl.grpo.tasks import load_task
from dspy_rl.grpo.trainer import GRPOTextTrainer
from dspy_rl.utils.checkpoint import latest_checkpoint, load_latest_checkpoint, save_checkpoint
from dspy_rl.utils.convergence import PlateauDetector
from dspy_rl.utils.device import resolve_device as _resolve_device
from dspy_rl.utils.run_dir import new_run_dir, write_config
from dspy_rl.utils.run_logger import Panel, RunLogger
from dspy_rl.utils.run_status import write_status

logger = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a finished run reports (also written to ``<run_dir>/summary.json``)."""

    run_dir: str
    steps: int
    first_reward_mean: float | None
    last_reward_mean: float | None
    eval_reward: dict[int, float] = field(default_factory=dict)
    heldout_before: dict[str, float] | None = None
    heldout_after: dict[str, float] | None = None
    dataset: dict[str, Any] | None = None
    samples_per_s: float = 0.0
    status: str = "completed"
    converged_reason: str | None = None


#: learning_curve.png of a text GRPO run.
CURVE_PANELS: tuple[Panel, ...] = (("GRPO learning curve", "reward", ("reward_mean", "eval_reward")),)


def resolve_device(name: str) -> torch.device:
    """The run's torch device from the ``device`` setting (:func:`dspy_rl.utils.device.resolve_device`)."""
    return _resolve_device(name, key="device")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "sampling": gen.get_state(),
    }


def _set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    gen.set_state(state["sampling"])


def _prepare_run_dir(cfg: GRPOTrainConfig) -> tuple[Path, bool]:
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if latest_checkpoint(run_dir) is None or not (run_dir / "model").is_dir():
            raise ConfigError(
                f"resume={cfg.resume!r} is not a GRPO run directory with a checkpoint "
                "(checkpoints/ and model/); pass the run_dir of an earlier `grpo train`"
            )
        return run_dir, True
    if cfg.run_dir and latest_checkpoint(cfg.run_dir) is not None:
        raise ConfigError(
            f"run_dir={cfg.run_dir!r} already holds a run; continue it with resume={cfg.run_dir} or pick a new run_dir"
        )
    return new_run_dir(cfg.run_dir, "grpo"), False


@dataclass
class _Data:
    """Where a run's batches come from: offline candidate groups, or an online task scored by ``reward_fn``."""

    texts: list[str]
    sampler: GroupSampler
    groups: list[Any] | None = None
    report: Any = None
    heldout: list[Any] = field(default_factory=list)
    task: Any = None
    reward_fn: RewardFn | None = None


def _offline_data(cfg: GRPOTrainConfig, run_dir: Path) -> _Data:
    """Load the scored groups (writing ``dataset_report.json``) and split off the held-out ones."""
    groups, report = load_groups(cfg.dataset, on_bad_line=cfg.on_bad_line)  # type: ignore[arg-type]
    (run_dir / "dataset_report.json").write_text(
        json.dumps({**report.as_dict(), "bad": [b.__dict__ for b in report.bad]}, indent=1)
    )
    texts = [t for g in groups for t in (g.prompt, *(c.text for c in g.candidates))]
    heldout: list[Any] = []
    if cfg.heldout_fraction > 0:
        try:
            groups, heldout = split_groups(groups, cfg.heldout_fraction, cfg.seed)
        except ValueError as exc:
            raise ConfigError(f"heldout_fraction={cfg.heldout_fraction}: {exc}") from None
    sampler = GroupSampler(len(groups), cfg.batch_groups, cfg.seed)
    return _Data(texts, sampler, groups=groups, report=report, heldout=heldout)


def _online_data(cfg: GRPOTrainConfig, reward_fn: RewardFn | None) -> _Data:
    """Load the task and resolve its reward (``reward_fn`` wins over ``cfg.reward``)."""
    if cfg.task.startswith("shell:"):
        # ShellEnv tasks: completions run as commands in sandboxed workspaces, scored by each task's verifier.
        from dspy_rl.grpo.shell_task import ShellVerifierReward, load_shell_text_task

        if reward_fn is None and cfg.reward != "rubric":
            raise ConfigError(
                f"reward={cfg.reward!r}: task={cfg.task} is scored by its tasks' verifiers only (use reward=rubric)"
            )
        try:
            task = load_shell_text_task(cfg.task)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"task={cfg.task}: {exc}") from exc
        reward_fn = reward_fn or ShellVerifierReward(task)
    else:
        task = load_task(cfg.task)
    if reward_fn is None:
        try:
            reward_fn = resolve_reward_fn(
                cfg.reward, task, cfg.reward_kwargs, cfg.objectives, cfg.objective_judges
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if not isinstance(reward_fn, ObjectiveReward) and (cfg.objectives.vector() != 1).any():
        raise ConfigError(
            f"objectives.weights={dict(cfg.objectives.weights)}: this reward reports one number, not objective "
            "terms; weights apply to reward=rubric or reward=judges"
        )
    sampler = GroupSampler(len(task.items), cfg.batch_groups, cfg.seed)
    return _Data(task.texts(), sampler, task=task, reward_fn=reward_fn)


def _policy(cfg: GRPOTrainConfig, run_dir: Path, resuming: bool, texts: list[str]) -> Any:
    """The initial policy: rebuilt from ``model/`` on resume, else built (and saved to ``model/``)."""
    if resuming:
        return load_policy(run_dir / "model", temperature=cfg.temperature)
    policy = build_policy(
        cfg.model,
        texts,
        run_dir,
        temperature=cfg.temperature,
        max_positions=max(16, cfg.max_new_tokens),
        tiny_layers=cfg.tiny_layers,
        tiny_embd=cfg.tiny_embd,
        tiny_heads=cfg.tiny_heads,
        seed=cfg.seed,
    )
    policy.save_pretrained(run_dir / "model")
    return policy


def train(cfg: GRPOTrainConfig, reward_fn: RewardFn | None = None) -> RunSummary:
    """Run (or resume) GRPO training as configured; ``reward_fn`` overrides ``cfg.reward`` in online mode."""
    device = resolve_device(cfg.device)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    run_dir, resuming = _prepare_run_dir(cfg)
    _seed_all(cfg.seed)
    data = _offline_data(cfg, run_dir) if cfg.mode == "offline" else _online_data(cfg, reward_fn)
    policy = _policy(cfg, run_dir, resuming, data.texts)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(policy)
    policy.to(device)
    return _GRPORun(cfg, run_dir, resuming, data, policy, device).run()


class _GRPORun:
    """One GRPO run once its data and policy exist: restore, loop, evaluate, checkpoint, summarise."""

    def __init__(
        self,
        cfg: GRPOTrainConfig,
        run_dir: Path,
        resuming: bool,
        data: _Data,
        policy: Any,
        device: torch.device,
    ) -> None:
        self.cfg, self.run_dir, self.resuming, self.data, self.policy = cfg, run_dir, resuming, data, policy
        self.trainer = GRPOTextTrainer(policy, cfg)
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(cfg.seed)
        self.heldout_before: dict[str, float] | None = None
        self.plateau = PlateauDetector(cfg.convergence) if cfg.convergence.enabled else None
        self.last_metrics: dict[str, Any] = {}
        metrics_rows = self._restore() if resuming else None
        if not resuming:
            write_config(run_dir, asdict(cfg))
        self.metrics_log = RunLogger(
            run_dir,
            cfg.logging,
            cfg.steps,
            self.trainer.step,
            asdict(cfg),
            step_key="step",
            keep_rows=metrics_rows or 0,
            tb_prefix="grpo/",
            postfix=lambda m: f"reward={m['reward_mean']:.3f}, kl={m.get('kl', 0.0):.4f}",
            panels=CURVE_PANELS,
        )
        report = data.report
        self.summary = RunSummary(
            str(run_dir), self.trainer.step, None, None, dataset=None if report is None else report.as_dict()
        )
        self.eval_prompts = data.task.prompts if data.task is not None else []
        if data.heldout and not resuming:
            self.heldout_before = ranking_metrics(policy, data.heldout)
            self.metrics_log.log(0, {f"heldout/{k}": v for k, v in self.heldout_before.items()})
            logger.info("held-out groups before training: %s", self.heldout_before)

    def _restore(self) -> int:
        """Load the latest checkpoint into trainer, sampler and RNGs; returns the metrics rows to keep."""
        found = load_latest_checkpoint(
            self.run_dir
        )  # falls back past a damaged latest checkpoint, with a warning
        assert found is not None  # _prepare_run_dir checked that there is one
        _, state = found
        self.trainer.load_state_dict(state["trainer"])
        self.data.sampler.consumed = int(state["sampler_consumed"])
        self.heldout_before = state.get("heldout_before")
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
        _set_rng_state(state["rng"], self.gen)
        resume_step = self.trainer.step
        write_config(self.run_dir, asdict(self.cfg), f"config.resume-{resume_step}.yaml")
        logger.info("resumed %s at step %d", self.run_dir, resume_step)
        return int(state["metrics_rows"])

    def _checkpoint(self) -> None:
        save_checkpoint(
            self.run_dir,
            self.trainer.step,
            {
                "trainer": self.trainer.state_dict(),
                "sampler_consumed": self.data.sampler.consumed,
                "rng": _rng_state(self.gen),
                "metrics_rows": self.metrics_log.rows,
                "heldout_before": self.heldout_before,
                "plateau": None if self.plateau is None else self.plateau.state_dict(),
                "config": asdict(self.cfg),
            },
        )

    def _eval(self) -> None:
        assert self.data.task is not None and self.data.reward_fn is not None
        score = evaluate(
            self.policy, self.eval_prompts, self.data.reward_fn, self.cfg.max_new_tokens, self.gen
        )
        self.summary.eval_reward[self.trainer.step] = score
        self.last_metrics["eval_reward"] = score
        objectives = {f"eval_{k}": v for k, v in self._objective_metrics().items()}
        self.metrics_log.log(self.trainer.step, {"eval_reward": score, **objectives})
        logger.info(
            "step %d: eval mean reward %.3f over %d prompts", self.trainer.step, score, len(self.eval_prompts)
        )

    def _objective_metrics(self) -> dict[str, float]:
        """Mean objective terms of the completions scored since the last call (an :class:`ObjectiveReward`)."""
        fn = self.data.reward_fn
        return fn.pop_metrics() if isinstance(fn, ObjectiveReward) else {}

    def _batch(self, t0: float) -> tuple[list[Any], list[Any], list[float], list[int], float]:
        """The next batch: (prompts, responses, rewards, group ids, seconds spent sampling)."""
        idx = self.data.sampler.next_batch()
        if self.data.groups is not None:
            prompts, cand_texts, rewards, gids = flatten_groups([self.data.groups[i] for i in idx])
            return prompts, [self.policy.tokenize_response(t) for t in cand_texts], rewards, gids, 0.0
        task, reward_fn = self.data.task, self.data.reward_fn
        assert task is not None and reward_fn is not None
        sampled = sample_groups(
            self.policy,
            [task.items[i].prompt for i in idx],
            reward_fn,
            self.cfg.group_size,
            self.cfg.max_new_tokens,
            self.gen,
        )
        sample_s = time.perf_counter() - t0
        return sampled.prompts, sampled.responses, sampled.rewards, sampled.group_ids, sample_s

    def _step(self) -> int:
        """One batch and update, with its logging, evaluation and checkpoint; returns the number of samples."""
        cfg, summary = self.cfg, self.summary
        t0 = time.perf_counter()
        prompts, responses, rewards, gids, sample_s = self._batch(t0)
        step = self.trainer.step
        metrics = self.trainer.update(prompts, responses, rewards, gids)
        metrics["step_s"] = time.perf_counter() - t0
        metrics["sample_s"] = sample_s
        metrics.update(self._objective_metrics())
        self.last_metrics = metrics
        if summary.first_reward_mean is None:
            summary.first_reward_mean = metrics["reward_mean"]
        summary.last_reward_mean = metrics["reward_mean"]
        if step % cfg.logging.log_every == 0 or self.trainer.step == cfg.steps:
            self.metrics_log.log(step, metrics)
        self.metrics_log.advance(1, metrics)
        if cfg.mode == "online" and cfg.eval_every and self.trainer.step % cfg.eval_every == 0:
            self._eval()
        if self.trainer.step % cfg.ckpt_every == 0 and self.trainer.step < cfg.steps:
            self._checkpoint()
        return len(prompts)

    def _converged(self) -> bool:
        """Feed the plateau test this step's metric; True (with the reason recorded) once it has plateaued."""
        if self.plateau is None:
            return False
        metric = self.cfg.convergence.metric
        reason = self.plateau.update(float(self.last_metrics.get(metric, float("nan"))), self.trainer.step)
        if reason is None:
            return False
        self.summary.status, self.summary.converged_reason = "converged", reason
        self.metrics_log.log(self.trainer.step, {"converged": 1})
        logger.info("converged at step %d: %s", self.trainer.step, reason)
        return True

    def _finish(self) -> None:
        """Final checkpoint, held-out metrics after training, and the final status (completed or converged)."""
        self._checkpoint()
        if self.data.heldout:
            after = ranking_metrics(self.policy, self.data.heldout)
            self.metrics_log.log(self.trainer.step, {f"heldout/{k}": v for k, v in after.items()})
            self.summary.heldout_before, self.summary.heldout_after = self.heldout_before, after
            logger.info("held-out groups after training: %s", after)
        extra = {"reason": self.summary.converged_reason} if self.summary.converged_reason else {}
        write_status(self.run_dir, self.summary.status, kind="grpo", step=self.trainer.step, **extra)

    def run(self) -> RunSummary:
        cfg = self.cfg
        samples = 0
        t_start = time.perf_counter()
        try:
            if cfg.mode == "online" and cfg.eval_every and self.trainer.step == 0:
                self._eval()
            write_status(self.run_dir, "running", kind="grpo", steps=cfg.steps)
            while self.trainer.step < cfg.steps:
                samples += self._step()
                if self._converged():
                    break
            self._finish()
        finally:
            self.metrics_log.close()
        elapsed = time.perf_counter() - t_start
        self.summary.steps = self.trainer.step
        self.summary.samples_per_s = samples / elapsed if elapsed > 0 else 0.0
        self.policy.save_pretrained(self.run_dir / "final")
        (self.run_dir / "summary.json").write_text(json.dumps(self.summary.__dict__, indent=1))
        return self.summary
