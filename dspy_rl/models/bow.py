"""Bag-of-words linear language model: a text policy that needs nothing beyond torch.

Responses are whitespace-separated words from a fixed vocabulary. The next-word distribution is a softmax over
a *linear* function of three sparse features::

    logits(t) = W_prompt @ bow(prompt) + E_prev[y_{t-1}] + E_pos[t] + b

``bow(prompt)`` is the prompt's binary word-presence vector, ``y_{-1}`` is a begin-of-response symbol and ``t`` the
response position (capped). Every response ends with ``<eos>``. So ``log p(response | prompt)`` is an exact sum of
per-word log-softmax terms, sampling is ancestral, and the model plugs into the same GRPO loss as a causal LM.
Weights start at zero (a uniform policy over every word but ``<pad>``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dspy_rl.models import response_logprobs
from dspy_rl.utils.atomic import atomic_torch_save, atomic_write_bytes

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"


class WordVocab:
    """Whitespace word vocabulary with ``<pad>`` (0), ``<unk>`` (1) and ``<eos>`` (2)."""

    def __init__(self, words: Sequence[str]):
        if list(words[:3]) != [PAD, UNK, EOS]:
            raise ValueError(f"a vocabulary must start with {PAD}, {UNK}, {EOS}; got {list(words[:3])}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary words must be unique")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1) -> WordVocab:
        """All words of ``texts`` seen at least ``min_count`` times, in first-seen order (deterministic)."""
        counts: dict[str, int] = {}
        for text in texts:
            for w in text.split():
                counts[w] = counts.get(w, 0) + 1
        return cls(
            [PAD, UNK, EOS] + [w for w, c in counts.items() if c >= min_count and w not in (PAD, UNK, EOS)]
        )

    def __len__(self) -> int:
        return len(self.words)

    @property
    def pad_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    @property
    def eos_id(self) -> int:
        return 2

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Words up to the first ``<eos>``; padding is dropped."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i != self.pad_id:
                out.append(self.words[i])
        return " ".join(out)


@dataclass
class BowBatch:
    """Encoded (prompt, response) pairs: binary prompt bags, response ids right-padded, response mask."""

    prompt_bow: Tensor  # (B, V) float
    response_ids: Tensor  # (B, T) long, padded with <pad>
    mask: Tensor  # (B, T) bool


class BagOfWordsLM(nn.Module):
    """Token-level bag-of-words linear LM over a word vocabulary (see module docstring)."""

    def __init__(self, vocab: WordVocab, max_positions: int = 16, temperature: float = 1.0):
        super().__init__()
        if max_positions < 1:
            raise ValueError(f"max_positions must be >= 1, got {max_positions}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.vocab = vocab
        self.max_positions = max_positions
        self.temperature = temperature
        v = len(vocab)
        self.prompt_proj = nn.Linear(v, v)
        self.prev = nn.Embedding(v + 1, v)  # row v is the begin-of-response symbol
        self.pos = nn.Embedding(max_positions, v)
        for p in self.parameters():
            nn.init.zeros_(p)
        # <pad> is never a valid response word: the policy cannot emit it (decoding drops padding).
        pad_mask = torch.zeros(v, dtype=torch.bool)
        pad_mask[vocab.pad_id] = True
        self.register_buffer("_pad_mask", pad_mask, persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pos.weight.device

    # ----- encoding -----
    def prompt_bags(self, prompts: Sequence[str]) -> Tensor:
        bags = torch.zeros(len(prompts), len(self.vocab), device=self.device)
        for row, prompt in enumerate(prompts):
            ids = self.vocab.encode(prompt)
            if ids:
                bags[row, torch.tensor(ids, device=self.device)] = 1.0
        return bags

    def tokenize_response(self, text: str) -> list[int]:
        """Word ids of ``text`` followed by ``<eos>``."""
        return self.vocab.encode(text) + [self.vocab.eos_id]

    def decode_response(self, ids: Sequence[int]) -> str:
        return self.vocab.decode(ids)

    def encode(self, prompts: Sequence[str], responses: Sequence[Sequence[int]]) -> BowBatch:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if any(len(r) == 0 for r in responses):
            raise ValueError("every response needs at least one token (its <eos>)")
        t = max(len(r) for r in responses)
        ids = torch.full((len(responses), t), self.vocab.pad_id, dtype=torch.long)
        mask = torch.zeros(len(responses), t, dtype=torch.bool)
        for row, r in enumerate(responses):
            ids[row, : len(r)] = torch.as_tensor(list(r), dtype=torch.long)
            mask[row, : len(r)] = True
        return BowBatch(self.prompt_bags(prompts), ids.to(self.device), mask.to(self.device))

    # ----- scoring -----
    def _logits(self, prompt_bow: Tensor, prev_ids: Tensor, positions: Tensor) -> Tensor:
        """Logits ``(B, T, V)`` for prev ids ``(B, T)`` at response positions ``(T,)`` or ``(B, T)``."""
        positions = positions.clamp(max=self.max_positions - 1)
        logits = (
            self.prompt_proj(prompt_bow)[:, None, :] + self.prev(prev_ids) + self.pos(positions)
        ) / self.temperature
        return logits.masked_fill(self._pad_mask, float("-inf"))

    def token_logprobs(self, batch: BowBatch) -> tuple[Tensor, Tensor]:
        """Per-token ``log p(y_t | prompt, y_<t)`` ``(B, T)`` and the response mask ``(B, T)``."""
        b, t = batch.response_ids.shape
        bos = torch.full((b, 1), len(self.vocab), dtype=torch.long, device=self.device)
        prev = torch.cat([bos, batch.response_ids[:, :-1]], dim=1)
        logits = self._logits(batch.prompt_bow, prev, torch.arange(t, device=self.device))
        return response_logprobs(logits, batch.response_ids, batch.mask, self.vocab.eos_id), batch.mask

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        repeats: int = 1,
    ) -> list[list[int]]:
        """Ancestral sampling at ``self.temperature``; each response ends at ``<eos>`` or ``max_new_tokens``.

        ``repeats``: completions per prompt, returned prompt-major (``prompts[i]``'s are ``i*repeats ...``).
        """
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        prompts = [p for p in prompts for _ in range(repeats)]
        bags = self.prompt_bags(prompts)
        b = len(prompts)
        prev = torch.full((b,), len(self.vocab), dtype=torch.long, device=self.device)
        done = torch.zeros(b, dtype=torch.bool, device=self.device)
        out = torch.full((b, max_new_tokens), self.vocab.pad_id, dtype=torch.long, device=self.device)
        lengths = [max_new_tokens] * b
        base = self.prompt_proj(bags)
        for t in range(max_new_tokens):
            pos = self.pos.weight[min(t, self.max_positions - 1)]
            logits = ((base + self.prev(prev) + pos) / self.temperature).masked_fill(
                self._pad_mask, float("-inf")
            )
            probs = torch.softmax(logits, -1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            out[:, t] = nxt
            newly = (~done) & (nxt == self.vocab.eos_id)
            for i in newly.nonzero().squeeze(1).tolist():
                lengths[i] = t + 1
            done |= newly
            prev = nxt
            if bool(done.all()):
                break
        rows = out.tolist()
        return [rows[i][: lengths[i]] for i in range(b)]

    # ----- persistence -----
    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``config.json`` (vocabulary, sizes) and ``model.pt`` (weights) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        config = {
            "model_type": "bow",
            "vocab": self.vocab.words,
            "max_positions": self.max_positions,
            "temperature": self.temperature,
        }
        atomic_write_bytes(d / "config.json", json.dumps(config, indent=1).encode())
        atomic_torch_save({k: v.cpu() for k, v in self.state_dict().items()}, d / "model.pt")

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], temperature: float | None = None
    ) -> BagOfWordsLM:
        d = Path(directory)
        if not (d / "config.json").is_file() or not (d / "model.pt").is_file():
            raise FileNotFoundError(f"{d} is not a saved bag-of-words model (needs config.json and model.pt)")
        config = json.loads((d / "config.json").read_text())
        if config.get("model_type") != "bow":
            raise ValueError(f"{d}/config.json has model_type={config.get('model_type')!r}, expected 'bow'")
        model = cls(
            WordVocab(config["vocab"]),
            max_positions=int(config["max_positions"]),
            temperature=float(temperature if temperature is not None else config.get("temperature", 1.0)),
        )
        model.load_state_dict(torch.load(d / "model.pt", map_location="cpu", weights_only=True))
        return model

    @staticmethod
    def is_saved_model(directory: str | os.PathLike[str]) -> bool:
        path = Path(directory) / "config.json"
        try:
            return path.is_file() and json.loads(path.read_text()).get("model_type") == "bow"
        except (OSError, ValueError):
            return False
