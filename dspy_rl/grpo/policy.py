"""Text-policy interface used by the GRPO trainer, and the factory behind ``model=``.

A text policy is an ``nn.Module`` with:

* ``tokenize_response(text) -> list[int]`` (ends with eos) and ``decode_response(ids) -> str``;
* ``encode(prompts, response_ids) -> batch`` and ``token_logprobs(batch) -> (logp (B, T), mask (B, T))``,
  the per-token log-probs of each response given its prompt (prompt tokens are not scored);
* ``sample(prompts, max_new_tokens, generator, repeats) -> list[list[int]]`` (``repeats`` completions per prompt);
* ``save_pretrained(dir)`` / ``from_pretrained(dir)`` and a ``device`` property.

Implemented by :class:`dspy_rl.models.bow.BagOfWordsLM` and :class:`dspy_rl.models.hf.HFCausalLMPolicy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from dspy_rl.models.bow import BagOfWordsLM, WordVocab


@runtime_checkable
class TextPolicy(Protocol):
    temperature: float

    @property
    def device(self) -> torch.device: ...

    def tokenize_response(self, text: str) -> list[int]: ...

    def decode_response(self, ids: Sequence[int]) -> str: ...

    def encode(self, prompts: Sequence[str], responses: Sequence[Sequence[int]]) -> object: ...

    def token_logprobs(self, batch: object) -> tuple[Tensor, Tensor]: ...

    def sample(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        repeats: int = 1,
    ) -> list[list[int]]: ...

    def save_pretrained(self, directory: str | Path) -> None: ...


def build_policy(
    model: str,
    texts: Sequence[str],
    workdir: Path,
    *,
    temperature: float = 1.0,
    max_positions: int = 16,
    tiny_layers: int = 2,
    tiny_embd: int = 64,
    tiny_heads: int = 2,
    seed: int = 0,
) -> torch.nn.Module:
    """Build the policy named by ``model`` (see ``GRPOTrainConfig.model``); ``texts`` define fresh vocabularies."""
    if model == "bow":
        return BagOfWordsLM(WordVocab.build(texts), max_positions=max_positions, temperature=temperature)
    from dspy_rl.models.hf import HFCausalLMPolicy, build_tiny_causal_lm

    if model == "tiny-gpt2":
        directory = build_tiny_causal_lm(
            workdir / "tiny-gpt2-init",
            texts,
            n_layer=tiny_layers,
            n_embd=tiny_embd,
            n_head=tiny_heads,
            seed=seed,
        )
        return HFCausalLMPolicy.from_pretrained(directory, temperature=temperature, local_files_only=True)
    return load_policy(model, temperature=temperature)


def load_policy(name_or_dir: str | Path, temperature: float | None = None) -> torch.nn.Module:
    """A saved bag-of-words model directory, or a Hugging Face causal LM (directory or hub name)."""
    if BagOfWordsLM.is_saved_model(name_or_dir):
        return BagOfWordsLM.from_pretrained(name_or_dir, temperature=temperature)
    from dspy_rl.models.hf import HFCausalLMPolicy

    return HFCausalLMPolicy.from_pretrained(
        name_or_dir, temperature=1.0 if temperature is None else temperature
    )


def enable_gradient_checkpointing(policy: torch.nn.Module) -> None:
    """``gradient_checkpointing=true``: turn it on for a Hugging Face policy; a ConfigError for any other."""
    from dspy_rl.config import ConfigError

    if not hasattr(policy, "enable_gradient_checkpointing"):
        raise ConfigError(
            f"gradient_checkpointing=true needs a Hugging Face policy, but this run's policy is "
            f"{type(policy).__name__}; set gradient_checkpointing=false or model=tiny-gpt2 / a HF model directory"
        )
    try:
        policy.enable_gradient_checkpointing()
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
