"""One text policy per mining level, trained with GRPO on mined groups and resumable from its own checkpoints.

A :class:`LevelTrainer` owns a directory (``<state_dir>/ckpts_<level>/`` in auto mode, ``<run_dir>/policy/`` in
``stream train``)::

    model/                 architecture + vocabulary / tokenizer, written once (atomically: temp dir, rename)
    ckpt_<cycle>.pt        trainer state (policy, reference, optimizer, scheduler) + progress, written atomically
    latest                 name of the newest checkpoint (replaced atomically)
    metrics.jsonl          one row per trained cycle (with the machine's CPU/RAM/GPU/disk use)

The progress saved with the weights (``cycle``, ``cursor``, ``groups_trained``, ``updates``) is the truth a
restarted auto mode resumes from: a cycle whose checkpoint exists is never trained again.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class LevelTrainOptions:
    """What :class:`LevelTrainer` needs from the ``train`` block of the stream config."""

    model: str = "bow"
    batch_groups: int = 8
    lr: float = 0.05
    kl_target: float = 0.02
    kl_warmup: int = 5
    updates_per_batch: int = 2
    seed: int = 0
    device: str = "cpu"
    tiny_layers: int = 2
    tiny_embd: int = 64
    tiny_heads: int = 2
    keep_checkpoints: int = 3


class LevelTrainer:
    """GRPO on one level's groups, checkpointed in ``directory`` (see module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], level: str, options: LevelTrainOptions) -> None:
        self.dir = Path(directory)
        self.level = level
        self.opt = options
        self.policy: Any = None
        self.trainer: Any = None
        self.progress: dict[str, Any] = {"cycle": -1, "cursor": 0, "groups_trained": 0, "updates": 0}
        self.dir.mkdir(parents=True, exist_ok=True)
        latest = self.latest_checkpoint()
        if latest is not None:
            from dspy_rl.utils.checkpoint import load_checkpoint

            self._state = load_checkpoint(latest)
            self.progress.update(self._state["progress"])
            logger.info("level %s: resuming from %s (cycle %d)", level, latest.name, self.progress["cycle"])
        else:
            self._state = None

    # -- checkpoints ------------------------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        pointer = self.dir / "latest"
        if pointer.is_file():
            path = self.dir / pointer.read_text().strip()
            if path.is_file():
                return path
        found = sorted(self.dir.glob("ckpt_*.pt"))
        return found[-1] if found else None

    def _grpo_config(self) -> Any:
        from dspy_rl.grpo.config import GRPOTrainConfig
        from dspy_rl.utils.run_logger import LoggingConfig

        o = self.opt
        return GRPOTrainConfig(
            mode="offline",
            dataset="<mined each cycle>",
            model=o.model,
            batch_groups=o.batch_groups,
            lr=o.lr,
            kl_target=o.kl_target,
            kl_warmup=o.kl_warmup,
            updates_per_batch=o.updates_per_batch,
            seed=o.seed,
            device=o.device,
            logging=LoggingConfig(tensorboard=False, progress_bar=False, plot=False),
            tiny_layers=o.tiny_layers,
            tiny_embd=o.tiny_embd,
            tiny_heads=o.tiny_heads,
        )

    def _ensure_policy(self, texts: list[str]) -> None:
        if self.policy is not None:
            return
        import torch

        from dspy_rl.grpo.policy import build_policy, load_policy
        from dspy_rl.grpo.trainer import GRPOTextTrainer
        from dspy_rl.utils.device import resolve_device

        model_dir = self.dir / "model"
        if (model_dir / ".complete").is_file():
            policy = load_policy(model_dir)
        else:
            torch.manual_seed(self.opt.seed)
            policy = build_policy(
                self.opt.model,
                texts,
                self.dir,
                max_positions=32,
                tiny_layers=self.opt.tiny_layers,
                tiny_embd=self.opt.tiny_embd,
                tiny_heads=self.opt.tiny_heads,
                seed=self.opt.seed,
            )
            tmp = self.dir / "model.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            policy.save_pretrained(tmp)
            (tmp / ".complete").write_text("")
            shutil.rmtree(model_dir, ignore_errors=True)
            os.replace(tmp, model_dir)
        policy.to(resolve_device(self.opt.device, "train.device"))
        self.policy = policy
        self.trainer = GRPOTextTrainer(policy, self._grpo_config())
        if self._state is not None:
            self.trainer.load_state_dict(self._state["trainer"])
            self._state = None

    def save(self, cycle: int) -> Path:
        from dspy_rl.utils.atomic import atomic_torch_save, atomic_write_bytes

        path = self.dir / f"ckpt_{cycle:07d}.pt"
        atomic_torch_save({"trainer": self.trainer.state_dict(), "progress": dict(self.progress),
                               "level": self.level}, path)  # fmt: skip
        atomic_write_bytes(self.dir / "latest", path.name.encode())
        for old in sorted(self.dir.glob("ckpt_*.pt"))[: -self.opt.keep_checkpoints]:
            old.unlink(missing_ok=True)
        return path

    # -- training ---------------------------------------------------------------------------------------
    def train(
        self, groups: list[Any], *, cycle: int, cursor: int = 0, steps: int | None = None
    ) -> dict[str, Any]:
        """GRPO updates on ``groups`` in batches of ``batch_groups``: one pass over them (``steps=None``) or
        ``steps`` batches (cycling through reshuffled passes); then a checkpoint that records ``cycle`` and
        ``cursor``. Returns the cycle's mean metrics."""
        from dspy_rl.grpo.dataset import flatten_groups
        from dspy_rl.system.stats import usage_metrics
        from dspy_rl.utils.run_status import write_status

        write_status(self.dir, "running", kind=f"level:{self.level}", cycle=cycle)

        trainable = [g for g in groups if g.has_signal]
        self._ensure_policy([t for g in groups for t in (g.prompt, *(c.text for c in g.candidates))])
        rng = random.Random(self.opt.seed * 1_000_003 + cycle)
        order = list(trainable)
        rng.shuffle(order)
        rows: list[dict[str, Any]] = []
        t0 = time.perf_counter()
        batches = [order[i : i + self.opt.batch_groups] for i in range(0, len(order), self.opt.batch_groups)]
        if steps is not None and batches:
            while len(batches) < steps:
                rng.shuffle(order)
                batches += [
                    order[i : i + self.opt.batch_groups] for i in range(0, len(order), self.opt.batch_groups)
                ]
            batches = batches[:steps]
        for batch in batches:
            prompts, texts, rewards, gids = flatten_groups(batch)
            responses = [self.policy.tokenize_response(t) for t in texts]
            rows.append(self.trainer.update(prompts, responses, rewards, gids))
        self.progress.update(
            cycle=cycle,
            cursor=cursor,
            groups_trained=self.progress["groups_trained"] + len(trainable),
            updates=self.progress["updates"] + len(rows),
        )
        metrics: dict[str, Any] = {
            "groups": len(groups),
            "trainable_groups": len(trainable),
            "steps": len(rows),
        }
        for key in ("reward_mean", "loss", "kl", "frac_no_signal"):
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                metrics[key] = sum(values) / len(values)
        metrics["train_s"] = time.perf_counter() - t0
        self.save(cycle)
        row = {"cycle": cycle, "step": self.progress["updates"], "time": time.time(), **metrics,
               **{k: v for k, v in self.progress.items() if k != "cycle"}, **usage_metrics(self.dir)}  # fmt: skip
        with (self.dir / "metrics.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        write_status(self.dir, "idle", kind=f"level:{self.level}", cycle=cycle)
        return metrics
