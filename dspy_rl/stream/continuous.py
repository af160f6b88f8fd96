"""Continuous training: ingest → mine GRPO groups → one GRPO iteration → publish metrics, repeated.

``run_continuous`` drives the loop over three pluggable pieces:

* an *ingest step* ``() -> int`` (events consumed): a :class:`~dspy_rl.stream.ingest.KafkaIngester` slice or a
  :class:`~dspy_rl.stream.file_source.JsonlSource` slice;
* the miner (:func:`dspy_rl.traces.mining.mine`) writing this iteration's groups under ``<run_dir>/groups/``;
* a *train iteration* ``(groups_path) -> dict`` of metrics: :class:`TextGRPOIteration` by default, ``grpo_steps``
  updates of the GRPO package's :class:`~dspy_rl.grpo.trainer.GRPOTextTrainer` on a bag-of-words or Hugging Face
  text policy;
* optionally a PPO phase ``(iteration) -> dict``: :class:`~dspy_rl.stream.rl_phase.PPOPhase`, ``rl_steps`` env
  steps of the simulator's multi-policy PPO run, continued from its checkpoint each iteration.

Mined group files of finished iterations are deleted but the last ``keep_group_files``.

Each iteration's record (ingest counters, groups mined, training metrics) is published to ``agent.metrics`` on
the event bus and appended to ``<run_dir>/metrics.jsonl``. A stop request (SIGTERM) ends the loop after the
current iteration.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dspy_rl.stream.bus import EventBus
from dspy_rl.system.stats import usage_metrics
from dspy_rl.traces.mining import MineConfig, level_path, mine
from dspy_rl.traces.spans import TOPIC_METRICS
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)

TrainIteration = Callable[[Path], dict[str, Any]]


class TextGRPOIteration:
    """``train_iteration(groups_path) -> metrics``: ``steps`` GRPO updates on the mined groups of one iteration.

    The policy (bag-of-words, tiny GPT-2 or a local Hugging Face model: ``model``) lives in
    ``<run_dir>/policy_<level>/`` (:class:`~dspy_rl.stream.level_trainer.LevelTrainer`: model, atomic checkpoints,
    metrics), built on the first iteration with groups and resumed from its checkpoint by a later run.
    """

    def __init__(
        self, run_dir: str | Path, level: str = "signature", steps: int | None = 1, **options: Any
    ) -> None:
        from dspy_rl.stream.level_trainer import LevelTrainer, LevelTrainOptions

        self.run_dir = Path(run_dir)
        self.steps = steps
        self.trainer = LevelTrainer(self.run_dir / f"policy_{level}", level, LevelTrainOptions(**options))
        self.iteration = self.trainer.progress["cycle"] + 1

    def __call__(self, groups_path: Path) -> dict[str, Any]:
        from dspy_rl.grpo.dataset import DatasetError, load_groups

        try:
            groups, report = load_groups(groups_path, on_bad_line="skip")
        except DatasetError as exc:
            logger.info("no GRPO update this iteration: %s", exc)
            return {"updated": 0, "reason": str(exc)}
        for bad in report.bad:
            logger.warning("%s:%d: mined line skipped (%s)", groups_path, bad.line, bad.reason)
        metrics = self.trainer.train(groups, cycle=self.iteration, steps=self.steps)
        self.iteration += 1
        return {"updated": 1, "trainable_groups": len(groups), **metrics}


def run_continuous(
    store: TraceStore,
    ingest_step: Callable[[], int],
    train_iteration: TrainIteration,
    *,
    run_dir: str | Path,
    max_iterations: int,
    mine_config: MineConfig,
    bus: EventBus | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    rl_phase: Callable[[int], dict[str, Any]] | None = None,
    keep_group_files: int | None = None,
) -> list[dict[str, Any]]:
    """Run up to ``max_iterations`` iterations (see module docstring); returns their metric records."""
    if max_iterations < 1:
        raise ValueError(f"max_iterations={max_iterations} must be >= 1")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    level = mine_config.levels[0]
    records: list[dict[str, Any]] = []
    for iteration in range(max_iterations):
        if should_stop():
            logger.info("stop requested; ending after %d iterations", iteration)
            break
        t0 = time.perf_counter()
        events = ingest_step()
        t_ingest = time.perf_counter() - t0
        cfg = MineConfig(
            **{**asdict(mine_config), "out": str(run_dir / "groups" / f"iter{iteration:05d}.jsonl")}
        )
        report = mine(store, cfg)
        t_mine = time.perf_counter() - t0 - t_ingest
        train = train_iteration(level_path(cfg.out, level))
        t_rl = time.perf_counter()
        rl = rl_phase(iteration) if rl_phase is not None else {}
        t_rl = time.perf_counter() - t_rl
        record = {
            "iteration": iteration,
            "time": time.time(),
            "events_ingested": events,
            "spans_stored": store.count_spans(),
            "groups": report.written.get(level, 0),
            "level": level,
            "ingest_s": t_ingest,
            "mine_s": t_mine,
            "iteration_s": time.perf_counter() - t0,
            **{f"train/{k}": v for k, v in train.items() if isinstance(v, (int, float, str))},
            **rl,
            **usage_metrics(run_dir),
        }
        if rl_phase is not None:
            record["rl_s"] = t_rl
        records.append(record)
        if keep_group_files is not None:
            _cleanup_groups(run_dir / "groups", keep_group_files)
        with (run_dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        if bus is not None:
            bus.publish(TOPIC_METRICS, record, key="stream-train")
            bus.flush()
        logger.info(
            "iteration %d: %d events, %d groups, reward_mean %s, loss %s",
            iteration,
            events,
            record["groups"],
            train.get("reward_mean"),
            train.get("loss"),
        )
    return records


def _cleanup_groups(directory: Path, keep: int) -> None:
    """Delete the mined group files of all but the last ``keep`` iterations (``iterNNNNN*.jsonl``)."""
    by_iter: dict[str, list[Path]] = {}
    for path in directory.glob("iter*.jsonl"):
        by_iter.setdefault(path.name.split(".")[0], []).append(path)
    for name in sorted(by_iter)[:-keep]:
        for path in by_iter[name]:
            path.unlink(missing_ok=True)
