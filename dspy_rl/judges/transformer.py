"""A small torch transformer reward model trained on preference pairs (Bradley-Terry), and its judge.

* Input: bytes of ``query`` and ``response`` (UTF-8, byte-level vocabulary, no tokenizer files needed) as
  ``[CLS] query [SEP] response``, with segment embeddings, truncated to ``max_len``.
* Model: token + position + segment embeddings, a ``torch.nn.TransformerEncoder``, and a linear head on the
  ``[CLS]`` state that outputs a scalar reward ``r(query, response)``.
* Training (:func:`train_preference_model`): Bradley-Terry loss ``-log sigmoid(r(q, chosen) - r(q, rejected))``
  with AdamW; the checkpoint (``judge.pt``: model config, weights, training summary) is written atomically.
* Judging (:class:`TransformerJudge`): loads the checkpoint; score = ``sigmoid(r / temperature)``.

Preference data is JSONL, one ``{"query", "chosen", "rejected"}`` object per line (:func:`load_pairs`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dspy_rl.judges.base import JudgeItem, JudgeScore
from dspy_rl.utils.atomic import atomic_torch_save

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "dspy-rl-preference-judge/1"
CHECKPOINT_NAME = "judge.pt"
PAD, CLS, SEP = 256, 257, 258
VOCAB = 259


@dataclass(frozen=True)
class PreferencePair:
    """``chosen`` is a better response to ``query`` than ``rejected``."""

    query: str
    chosen: str
    rejected: str


@dataclass
class RewardModelConfig:
    """Architecture of the reward model (stored in the checkpoint)."""

    d_model: int = 64
    nhead: int = 4
    num_layers: int = 2
    dim_feedforward: int = 128
    max_len: int = 256
    max_query_len: int = 96
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.nhead:
            raise ValueError(f"d_model={self.d_model} must be divisible by nhead={self.nhead}")
        if not 8 <= self.max_len <= 4096 or not 1 <= self.max_query_len < self.max_len - 2:
            raise ValueError(
                f"max_len={self.max_len}, max_query_len={self.max_query_len}: expected 8 <= max_len <= 4096 and "
                "1 <= max_query_len < max_len - 2"
            )


@dataclass
class TrainConfig:
    """Bradley-Terry training settings."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    seed: int = 0
    num_threads: int = 1


class RewardModel(nn.Module):
    """Byte-level transformer encoder with a scalar head on ``[CLS]``."""

    def __init__(self, cfg: RewardModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(VOCAB, cfg.d_model, padding_idx=PAD)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.seg = nn.Embedding(2, cfg.d_model)
        layer = nn.TransformerEncoderLayer(
            cfg.d_model, cfg.nhead, cfg.dim_feedforward, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, 1)

    def forward(self, ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.tok(ids) + self.pos(positions) + self.seg(segments)
        h = self.encoder(x, src_key_padding_mask=ids.eq(PAD))
        return self.head(self.norm(h[:, 0])).squeeze(-1)


def encode(
    queries: Sequence[str], responses: Sequence[str], cfg: RewardModelConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte ids and segment ids, padded to the longest row: ``[CLS] q [SEP] r``."""
    rows, segs = [], []
    for q, r in zip(queries, responses, strict=True):
        qb = list(q.encode("utf-8"))[: cfg.max_query_len]
        rb = list(r.encode("utf-8"))[: cfg.max_len - len(qb) - 2]
        rows.append([CLS, *qb, SEP, *rb])
        segs.append([0] * (len(qb) + 2) + [1] * len(rb))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    seg = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (r, s) in enumerate(zip(rows, segs, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        seg[i, : len(s)] = torch.tensor(s)
    return ids, seg


def load_pairs(path: str | os.PathLike[str]) -> list[PreferencePair]:
    """Read ``{"query", "chosen", "rejected"}`` JSONL; errors name the line."""
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                pairs.append(PreferencePair(str(obj["query"]), str(obj["chosen"]), str(obj["rejected"])))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}:{n}: expected a JSON object with query/chosen/rejected ({exc})"
                ) from exc
    if not pairs:
        raise ValueError(f"{path}: no preference pairs")
    return pairs


def pairwise_accuracy(model: RewardModel, pairs: Sequence[PreferencePair], batch_size: int = 64) -> float:
    """Fraction of pairs where ``r(chosen) > r(rejected)``."""
    model.eval()
    wins = 0
    with torch.inference_mode():
        for i in range(0, len(pairs), batch_size):
            chunk = pairs[i : i + batch_size]
            q = [p.query for p in chunk]
            rc = model(*encode(q, [p.chosen for p in chunk], model.cfg))
            rr = model(*encode(q, [p.rejected for p in chunk], model.cfg))
            wins += int((rc > rr).sum())
    return wins / max(1, len(pairs))


def train_preference_model(
    pairs: Iterable[PreferencePair],
    out_dir: str | os.PathLike[str],
    model_cfg: RewardModelConfig | None = None,
    train_cfg: TrainConfig | None = None,
) -> Path:
    """Train a reward model with the Bradley-Terry loss and write ``out_dir/judge.pt``; returns its path."""
    pairs = list(pairs)
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 preference pairs to train, got {len(pairs)}")
    model_cfg = model_cfg or RewardModelConfig()
    train_cfg = train_cfg or TrainConfig()
    if train_cfg.steps < 1 or train_cfg.batch_size < 1 or train_cfg.lr <= 0:
        raise ValueError(f"bad training config {train_cfg}: steps, batch_size >= 1 and lr > 0")
    if train_cfg.num_threads > 0:
        torch.set_num_threads(train_cfg.num_threads)
    torch.manual_seed(train_cfg.seed)
    rng = random.Random(train_cfg.seed)
    model = RewardModel(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    losses: list[float] = []
    model.train()
    for step in range(train_cfg.steps):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(train_cfg.batch_size)]
        q = [p.query for p in batch]
        # one forward pass over chosen and rejected together
        ids, seg = encode(q + q, [p.chosen for p in batch] + [p.rejected for p in batch], model_cfg)
        r = model(ids, seg)
        margin = r[: len(batch)] - r[len(batch) :]
        loss = nn.functional.softplus(-margin).mean()  # = -log sigmoid(margin)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0:
            logger.info("preference judge step %d loss %.4f", step, losses[-1])
    tail = losses[-max(1, len(losses) // 10) :]
    summary = {"steps": train_cfg.steps, "final_loss": sum(tail) / len(tail), "train_pairs": len(pairs)}
    path = Path(out_dir) / CHECKPOINT_NAME
    atomic_torch_save(
        {
            "format": CHECKPOINT_FORMAT,
            "model_config": dataclasses.asdict(model_cfg),
            "train_config": dataclasses.asdict(train_cfg),
            "summary": summary,
            "state_dict": model.state_dict(),
        },
        path,
    )
    logger.info("preference judge saved to %s (%s)", path, summary)
    return path


def load_reward_model(path: str | os.PathLike[str]) -> tuple[RewardModel, dict[str, Any]]:
    """Load a checkpoint written by :func:`train_preference_model` (a file or the directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.exists():
        raise FileNotFoundError(
            f"no preference-judge checkpoint at {p}; train one with dspy_rl.judges.transformer.train_preference_model "
            "or `dspy-rl serve train-judge pairs=<jsonl> out=<dir>`"
        )
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{p} is not a {CHECKPOINT_FORMAT} checkpoint")
    model = RewardModel(RewardModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt.get("summary", {})


class TransformerJudge:
    """Scores with a trained reward model: ``sigmoid(r(query, response) / temperature)``."""

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        name: str = "transformer",
        temperature: float = 1.0,
        num_threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature={temperature!r}: expected > 0")
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self.name = name
        self.temperature = temperature
        self.batch_size = batch_size
        self.model, self.summary = load_reward_model(checkpoint)

    def rewards(self, queries: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Raw rewards ``r(query, response)``."""
        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(queries), self.batch_size):
                ids, seg = encode(
                    queries[i : i + self.batch_size], responses[i : i + self.batch_size], self.model.cfg
                )
                out.extend(self.model(ids, seg).tolist())
        return out

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        if not items:
            return []
        rewards = self.rewards([it.query for it in items], [it.response for it in items])
        return [
            JudgeScore(
                1.0 / (1.0 + math.exp(-r / self.temperature)), f"reward {r:+.3f}", {"reward": round(r, 4)}
            )
            for r in rewards
        ]
