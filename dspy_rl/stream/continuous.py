"""Continuous training: ingest → mine GRPO groups → one GRPO iteration → publish metrics, repeated.

``run_continuous`` drives the loop over three pluggable pieces:

* an *ingest step* ``() -> int`` (events consumed): a :class:`~dspy_rl.stream.ingest.KafkaIngester` slice or a
  :class:`~dspy_rl.stream.file_source.JsonlSource` slice;
* the miner (:func:`dspy_rl.traces.mining.mine`) writing this iteration's groups under ``<run_dir>/groups/``;
* a *train iteration* ``(groups_path) -> dict`` of metrics: :class:`TextGRPOIteration` by default, one update of
  the GRPO package's :class:`~dspy_rl.grpo.trainer.GRPOTextTrainer` on a bag-of-words text policy.

Each iteration's record (ingest counters, groups mined, training metrics) is published to ``agent.metrics`` on
the event bus and appended to ``<run_dir>/metrics.jsonl``. A stop request (SIGTERM) ends the loop after the
current iteration.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dspy_rl.stream.bus import EventBus
from dspy_rl.traces.mining import MineConfig, level_path, mine
from dspy_rl.traces.spans import TOPIC_METRICS
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)

TrainIteration = Callable[[Path], dict[str, Any]]


class TextGRPOIteration:
    """``train_iteration(groups_path) -> metrics``: one GRPO update on a batch of the mined groups.

    The policy is the GRPO package's bag-of-words LM, built on the first call with a vocabulary over that
    iteration's prompts and candidates (later unseen words map to the unknown token), saved under
    ``<run_dir>/model`` after every update, with the trainer state in ``<run_dir>/trainer.pt``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        batch_groups: int = 8,
        lr: float = 0.05,
        kl_target: float = 0.02,
        kl_warmup: int = 5,
        updates_per_batch: int = 2,
        seed: int = 0,
    ) -> None:
        from dspy_rl.grpo.config import GRPOTrainConfig
        from dspy_rl.utils.run_logger import LoggingConfig

        self.run_dir = Path(run_dir)
        self.cfg = GRPOTrainConfig(
            mode="offline",
            dataset="<mined each iteration>",
            model="bow",
            batch_groups=batch_groups,
            lr=lr,
            kl_target=kl_target,
            kl_warmup=kl_warmup,
            updates_per_batch=updates_per_batch,
            seed=seed,
            device="cpu",
            logging=LoggingConfig(tensorboard=False, progress_bar=False, plot=False),
        )
        self.rng = random.Random(seed)
        self.policy: Any = None
        self.trainer: Any = None

    def __call__(self, groups_path: Path) -> dict[str, Any]:
        import torch

        from dspy_rl.grpo.dataset import DatasetError, flatten_groups, load_groups
        from dspy_rl.grpo.policy import build_policy
        from dspy_rl.grpo.trainer import GRPOTextTrainer
        from dspy_rl.utils.atomic import atomic_torch_save

        try:
            groups, report = load_groups(groups_path, on_bad_line="skip")
        except DatasetError as exc:
            logger.info("no GRPO update this iteration: %s", exc)
            return {"updated": 0, "reason": str(exc)}
        if self.policy is None:
            torch.manual_seed(self.cfg.seed)
            texts = [t for g in groups for t in (g.prompt, *(c.text for c in g.candidates))]
            self.policy = build_policy("bow", texts, self.run_dir, max_positions=16, seed=self.cfg.seed)
            self.trainer = GRPOTextTrainer(self.policy, self.cfg)
        batch = self.rng.sample(groups, min(self.cfg.batch_groups, len(groups)))
        prompts, texts, rewards, group_ids = flatten_groups(batch)
        responses = [self.policy.tokenize_response(t) for t in texts]
        metrics = self.trainer.update(prompts, responses, rewards, group_ids)
        self.policy.save_pretrained(self.run_dir / "model")
        atomic_torch_save({"trainer": self.trainer.state_dict()}, self.run_dir / "trainer.pt")
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
        }
        records.append(record)
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
