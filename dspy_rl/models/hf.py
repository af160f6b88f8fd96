"""Hugging Face causal-LM text policy: response log-probs given the prompt, and KV-cached sampling.

Layout used for both scoring and sampling: prompts are left-padded to a common length, responses right-padded, and
``position_ids = cumsum(attention_mask) - 1``, so a padded row computes exactly what the unpadded row would. Only the
response tokens are scored (the prompt is masked), and only their logits are materialized (``logits_to_keep``).
Logits are divided by ``temperature`` both when sampling and when scoring, so the scored distribution is the one
that was sampled from.

:func:`build_tiny_causal_lm` writes a tiny GPT-2 and a word-level tokenizer built locally from given texts into a
directory, to be loaded through the same :meth:`HFCausalLMPolicy.from_pretrained` path as any model (tests, benches,
and ``model=tiny-gpt2``); nothing is downloaded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from dspy_rl.models import response_logprobs

logger = logging.getLogger(__name__)


@dataclass
class HFBatch:
    """Encoded (prompt, response) pairs: left-padded prompts then right-padded responses."""

    input_ids: Tensor  # (B, Lp + Lr)
    attention_mask: Tensor  # (B, Lp + Lr)
    position_ids: Tensor  # (B, Lp + Lr)
    response_ids: Tensor  # (B, Lr)
    mask: Tensor  # (B, Lr) bool: real response tokens


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set)."""
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


class HFCausalLMPolicy(nn.Module):
    """A ``transformers`` causal LM plus its tokenizer, exposing the text-policy interface used by GRPO."""

    def __init__(self, model: nn.Module, tokenizer, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos token; responses must end with one")
        self.eos_id = int(tokenizer.eos_token_id)
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)
        self.bos_id = None if tokenizer.bos_token_id is None else int(tokenizer.bos_token_id)
        # Padding and bos are never valid response tokens: the policy cannot emit them. (Otherwise decoding would
        # drop them silently and a policy could pad a response to look like a shorter one to the reward.)
        banned = {i for i in (self.pad_id, self.bos_id) if i is not None and i != self.eos_id}
        vocab = max(int(model.get_output_embeddings().weight.shape[0]), len(tokenizer))
        ban = torch.zeros(vocab, dtype=torch.bool)
        ban[sorted(banned)] = True
        self.register_buffer("_banned", ban, persistent=False)
        self._prompt_cache: dict[str, list[int]] = {}

    @classmethod
    def from_pretrained(
        cls,
        name_or_dir: str | os.PathLike[str],
        *,
        temperature: float = 1.0,
        local_files_only: bool | None = None,
        torch_dtype: torch.dtype | None = None,
    ) -> HFCausalLMPolicy:
        """Load model and tokenizer from a hub name or a local directory.

        ``local_files_only`` defaults to True when ``name_or_dir`` is an existing directory or the hub is offline.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if local_files_only is None:
            local_files_only = Path(name_or_dir).is_dir() or hub_offline()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(name_or_dir), local_files_only=local_files_only)
            kwargs = {"local_files_only": local_files_only}
            if torch_dtype is not None:
                kwargs["dtype"] = torch_dtype
            model = AutoModelForCausalLM.from_pretrained(str(name_or_dir), **kwargs)
        except OSError as exc:
            raise FileNotFoundError(
                f"could not load a causal LM from {str(name_or_dir)!r} (local_files_only={local_files_only}): {exc}. "
                "Pass a local directory holding config.json, weights and tokenizer files, or a hub name "
                "that is already in the local cache."
            ) from exc
        return cls(model, tokenizer, temperature=temperature)

    def enable_gradient_checkpointing(self) -> None:
        """Recompute each transformer block's activations in backward instead of storing them (less memory, about
        one extra forward of compute). Non-reentrant checkpointing, so gradients flow although the inputs (token
        ids) need none; ``use_cache`` is turned off in the config (a KV cache is useless under checkpointing;
        :meth:`sample` still passes ``use_cache=True`` explicitly and runs in eval mode, where nothing is
        recomputed)."""
        if not getattr(self.model, "supports_gradient_checkpointing", False):
            raise ValueError(
                f"{type(self.model).__name__} does not support gradient checkpointing; "
                "set gradient_checkpointing=false"
            )
        enable = getattr(self.model, "activation_checkpointing_enable", None)  # transformers >= 5.x name
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model.config.use_cache = False

    @property
    def gradient_checkpointing(self) -> bool:
        for name in ("is_activation_checkpointing", "is_gradient_checkpointing"):
            if hasattr(type(self.model), name):
                return bool(getattr(self.model, name))
        return False

    @contextmanager
    def _checkpointing_active(self) -> Iterator[None]:
        """Make checkpointing apply in eval mode too: GRPO scores in eval mode (dropout off), but transformers
        checkpoints a block only while that block's ``training`` flag is set. Only the checkpointed blocks' own
        flag is raised (not their children's), so dropout and attention dropout stay off."""
        blocks = []
        if self.gradient_checkpointing and torch.is_grad_enabled():
            from transformers.modeling_layers import GradientCheckpointingLayer

            blocks = [
                m
                for m in self.model.modules()
                if isinstance(m, GradientCheckpointingLayer) and m.gradient_checkpointing and not m.training
            ]
        for m in blocks:
            m.training = True
        try:
            yield
        finally:
            for m in blocks:
                m.training = False

    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ----- encoding -----
    def _prompt_ids(self, prompt: str) -> list[int]:
        # A prompt is tokenized G times per step (sampling) plus G times (scoring): memoize (bounded).
        ids = self._prompt_cache.get(prompt)
        if ids is None:
            ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            if self.bos_id is not None:
                ids = [self.bos_id] + ids
            if not ids:
                raise ValueError(f"prompt {prompt!r} encodes to no tokens and the tokenizer has no bos token")
            if len(self._prompt_cache) >= 65536:
                self._prompt_cache.clear()
            self._prompt_cache[prompt] = ids
        return list(ids)

    def tokenize_response(self, text: str) -> list[int]:
        """Token ids of ``text`` followed by eos."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + [self.eos_id]

    def decode_response(self, ids: Sequence[int]) -> str:
        ids = list(ids)
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tokenizer.decode(ids, skip_special_tokens=False).strip()

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        att = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            if s:
                ids[row, width - len(s) :] = torch.as_tensor(list(s))
                att[row, width - len(s) :] = 1
        return ids, att

    def encode(self, prompts: Sequence[str], responses: Sequence[Sequence[int]]) -> HFBatch:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if any(len(r) == 0 for r in responses):
            raise ValueError("every response needs at least one token (its eos)")
        p_ids, p_att = self._left_pad([self._prompt_ids(p) for p in prompts])
        width = max(len(r) for r in responses)
        r_ids = torch.full((len(responses), width), self.pad_id, dtype=torch.long)
        r_mask = torch.zeros((len(responses), width), dtype=torch.bool)
        for row, r in enumerate(responses):
            r_ids[row, : len(r)] = torch.as_tensor(list(r))
            r_mask[row, : len(r)] = True
        input_ids = torch.cat([p_ids, r_ids], 1)
        attention = torch.cat([p_att, r_mask.long()], 1)
        position = (attention.cumsum(1) - 1).clamp(min=0)
        dev = self.device
        return HFBatch(input_ids.to(dev), attention.to(dev), position.to(dev), r_ids.to(dev), r_mask.to(dev))

    # ----- scoring -----
    def token_logprobs(self, batch: HFBatch) -> tuple[Tensor, Tensor]:
        """Per-token ``log p(y_t | prompt, y_<t)`` of the response tokens ``(B, Lr)`` and their mask ``(B, Lr)``."""
        lr = batch.response_ids.shape[1]
        with self._checkpointing_active():
            out = self.model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids,
                use_cache=False,
                logits_to_keep=lr + 1,
            )
        logits = out.logits[:, :-1].float() / self.temperature  # position i predicts response token i
        logits = logits.masked_fill(self._banned[: logits.shape[-1]], float("-inf"))
        return response_logprobs(logits, batch.response_ids, batch.mask, self.eos_id), batch.mask

    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        generator: torch.Generator | None = None,
        repeats: int = 1,
    ) -> list[list[int]]:
        """Ancestral sampling with a KV cache; each response ends at eos (kept) or after ``max_new_tokens``.

        ``repeats``: completions per prompt, returned prompt-major (``prompts[i]``'s are ``i*repeats ...``). The
        prompts are encoded once and their KV cache is copied ``repeats`` times.
        """
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        was_training = self.model.training
        self.model.eval()
        try:
            ids, att = self._left_pad([self._prompt_ids(p) for p in prompts])
            ids, att = ids.to(self.device), att.to(self.device)
            pos = (att.cumsum(1) - 1).clamp(min=0)
            result = self.model(
                input_ids=ids, attention_mask=att, position_ids=pos, use_cache=True, logits_to_keep=1
            )
            cache, last_logits = result.past_key_values, result.logits[:, -1]
            if repeats > 1:
                cache.batch_repeat_interleave(repeats)
                last_logits = last_logits.repeat_interleave(repeats, 0)
                att, pos = att.repeat_interleave(repeats, 0), pos.repeat_interleave(repeats, 0)
            b = att.shape[0]
            done = torch.zeros(b, dtype=torch.bool, device=self.device)
            out = torch.full((b, max_new_tokens), self.pad_id, dtype=torch.long, device=self.device)
            lengths = torch.full((b,), max_new_tokens, dtype=torch.long)
            next_pos = pos[:, -1:] + 1
            for t in range(max_new_tokens):
                logits = last_logits.float() / self.temperature
                probs = torch.softmax(logits.masked_fill(self._banned[: logits.shape[-1]], float("-inf")), -1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
                nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
                out[:, t] = nxt
                newly = (~done) & (nxt == self.eos_id)
                lengths[newly.cpu()] = t + 1
                done |= newly
                if bool(done.all()) or t == max_new_tokens - 1:
                    break
                att = torch.cat([att, torch.ones((b, 1), dtype=att.dtype, device=att.device)], 1)
                result = self.model(
                    input_ids=nxt[:, None],
                    attention_mask=att,
                    position_ids=next_pos,
                    past_key_values=cache,
                    use_cache=True,
                )
                cache, last_logits = result.past_key_values, result.logits[:, -1]
                next_pos = next_pos + 1
        finally:
            self.model.train(was_training)
        rows = out.tolist()
        return [rows[i][: int(lengths[i])] for i in range(b)]


def build_word_tokenizer(texts: Iterable[str]):
    """A word-level ``PreTrainedTokenizerFast`` over the whitespace words of ``texts`` (built locally)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<eos>", "<bos>"]
    vocab: dict[str, int] = {w: i for i, w in enumerate(specials)}
    for text in texts:
        for w in text.split():
            vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )


def build_tiny_causal_lm(
    directory: str | os.PathLike[str],
    texts: Iterable[str],
    *,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 128,
    seed: int = 0,
) -> Path:
    """Write a randomly initialized tiny GPT-2 with a word-level tokenizer over ``texts`` to ``directory``."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = build_word_tokenizer(texts)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    logger.info("wrote tiny GPT-2 (%d params, vocab %d) to %s", model.num_parameters(), len(tokenizer), out)
    return out
