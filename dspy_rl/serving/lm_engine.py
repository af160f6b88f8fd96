"""Token-by-token generation with log-probs for ``serve lm`` (one Hugging Face causal LM, CPU or CUDA).

:class:`LMEngine` loads a model directory (a ``save_pretrained`` directory, or a text-GRPO run directory: its
``final/`` or ``model/``), or, with no model, builds the tiny GPT-2 of :func:`dspy_rl.models.hf.build_tiny_causal_lm`
from a config (no download). :meth:`LMEngine.stream` yields one :class:`TokenStep` per generated token (id, text delta,
log-prob under the sampling distribution, top alternatives) so the HTTP layer can stream or collect them.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dspy_rl.models.hf import HFCausalLMPolicy, build_tiny_causal_lm

logger = logging.getLogger(__name__)

TINY_VOCAB = (
    "the a an of to in is and or not it this that for with on as be by at from yes no ok done answer "
    "question tool call result error file test tests run fix code python shell ls cat grep git make pytest "
    "user assistant system thought action observation finish true false null 0 1 2 3 4 5 6 7 8 9 10 "
    "{ } [ ] : , . ? ! \" ' ## [[ ]] next_thought next_tool_name next_tool_args reasoning completed"
)


class ModelLoadError(ValueError):
    """The model directory is missing or is not a causal LM (one line naming the path and what was expected)."""


@dataclass
class TokenStep:
    """One generated token."""

    token_id: int
    text: str  # the text this token adds to the decoded output
    logprob: float
    top: list[tuple[int, str, float]]  # (id, token text, logprob), best first
    finish_reason: str | None  # "stop" | "length" on the last step, else None


def resolve_model_dir(model: str) -> Path:
    """A directory holding a causal LM: ``model`` itself, or a GRPO run directory's ``final/`` then ``model/``."""
    path = Path(model).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"model={model!r}: no such directory; pass a saved HF model or a `grpo train` run dir"
        )
    if not path.is_dir():
        raise ModelLoadError(
            f"model={model!r} is a file; pass a directory (a saved HF model or a GRPO run dir)"
        )
    if (path / "config.json").is_file():
        return path
    for sub in ("final", "model"):
        if (path / sub / "config.json").is_file():
            return path / sub
    raise ModelLoadError(
        f"model={model!r} is not a Hugging Face model directory (no config.json) nor a text-GRPO run directory "
        "(no final/ or model/ inside); env-training checkpoints (checkpoint.pt of `dspy-rl train`) are served by "
        "`dspy-rl serve policy`"
    )


class LMEngine:
    """One loaded causal LM and its tokenizer; generation is single-sequence with a KV cache."""

    def __init__(
        self,
        model: str | None = None,
        *,
        model_name: str | None = None,
        device: str = "cpu",
        tiny: dict[str, Any] | None = None,
        chat_format: str = "auto",
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory | None = None
        if model:
            directory = resolve_model_dir(model)
            try:
                self.policy = HFCausalLMPolicy.from_pretrained(directory, local_files_only=True)
            except (FileNotFoundError, ValueError, OSError) as exc:
                raise ModelLoadError(f"model={model!r}: {str(exc).splitlines()[0]}") from exc
            self.model_name = model_name or directory.resolve().name
            if directory.name in ("final", "model") and not model_name:
                self.model_name = directory.parent.resolve().name
        else:
            tiny = dict(tiny or {})
            texts = [tiny.pop("vocab_text", None) or TINY_VOCAB]
            self._tmp = tempfile.TemporaryDirectory(prefix="dspy-rl-tiny-lm-")
            build_tiny_causal_lm(self._tmp.name, texts, **tiny)
            self.policy = HFCausalLMPolicy.from_pretrained(self._tmp.name, local_files_only=True)
            self.model_name = model_name or "tiny-gpt2"
        self.device = torch.device(device)
        self.policy.to(self.device)
        self.policy.model.eval()
        self.tokenizer = self.policy.tokenizer
        cfg = self.policy.model.config
        self.max_positions = int(
            getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
        )
        has_template = bool(getattr(self.tokenizer, "chat_template", None))
        self.chat_format = (
            "template"
            if chat_format == "auto" and has_template
            else ("plain" if chat_format == "auto" else chat_format)
        )
        self._token_text: dict[int, str] = {}
        # the policy never emits pad/bos; a served LM also never emits unk (it decodes to nothing)
        self._banned = self.policy._banned.clone()
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is not None and unk != self.policy.eos_id and unk < self._banned.shape[0]:
            self._banned[unk] = True

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # ----- prompts -----
    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        """The prompt text for chat ``messages`` (the tokenizer's chat template, else ``role: content`` lines)."""
        from dspy_rl.serving.openai_protocol import message_text

        plain = [{"role": m["role"], "content": message_text(m)} for m in messages]
        if self.chat_format == "template":
            return self.tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
        lines = [f"{m['role']}: {m['content']}" for m in plain]
        return "\n".join(lines) + "\nassistant:"

    def encode(self, prompt: str) -> list[int]:
        ids = list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if self.policy.bos_id is not None:
            ids = [self.policy.bos_id] + ids
        return ids or [self.policy.eos_id]

    def token_text(self, token_id: int) -> str:
        text = self._token_text.get(token_id)
        if text is None:
            text = self.tokenizer.convert_ids_to_tokens(int(token_id))
            self._token_text[token_id] = text = str(text)
        return text

    # ----- generation -----
    @torch.no_grad()
    def stream(
        self,
        prompt_ids: list[int],
        *,
        max_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        top_logprobs: int = 0,
        seed: int | None = None,
    ) -> Iterator[TokenStep]:
        """Generate up to ``max_tokens`` tokens after ``prompt_ids`` (temperature 0: greedy).

        The prompt is cut from the left to leave room for ``max_tokens`` within the model's positions. Log-probs
        are those of the distribution sampled from (after temperature and top-p; greedy reports the raw softmax).
        """
        stop = stop or []
        room = self.max_positions - max_tokens
        if room < 1:
            max_tokens = self.max_positions - 1
            room = 1
        ids = prompt_ids[-room:]
        gen = torch.Generator(device="cpu")
        if seed is not None:
            gen.manual_seed(seed & 0xFFFFFFFFFFFF)
        else:
            gen.seed()
        model = self.policy.model
        banned = self._banned
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        out = model(input_ids=input_ids, use_cache=True)
        cache, logits = out.past_key_values, out.logits[0, -1]
        generated: list[int] = []
        text_so_far = ""
        for t in range(max_tokens):
            logits = logits.float().masked_fill(banned[: logits.shape[-1]], float("-inf"))
            if temperature > 0:
                logp = torch.log_softmax(logits / temperature, -1)
                if top_p < 1.0:
                    probs = logp.exp()
                    sorted_p, order = probs.sort(descending=True)
                    keep = sorted_p.cumsum(0) - sorted_p < top_p
                    mask = torch.ones_like(probs, dtype=torch.bool)
                    mask[order[keep]] = False
                    logp = torch.log_softmax(logp.masked_fill(mask, float("-inf")), -1)
                nxt = int(torch.multinomial(logp.exp().cpu(), 1, generator=gen))
            else:
                logp = torch.log_softmax(logits, -1)
                nxt = int(logp.argmax())
            top: list[tuple[int, str, float]] = []
            if top_logprobs:
                vals, idx = logp.topk(min(top_logprobs, logp.shape[-1]))
                top = [(int(i), self.token_text(int(i)), float(v)) for v, i in zip(vals, idx, strict=True)]
            lp = float(logp[nxt])
            if nxt == self.policy.eos_id:
                yield TokenStep(nxt, "", lp, top, "stop")
                return
            generated.append(nxt)
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            delta = text[len(text_so_far) :] if text.startswith(text_so_far) else text
            hit = next((s for s in stop if s in text), None)
            if hit is not None:
                cut = text.index(hit)
                delta = text[len(text_so_far) : cut] if cut > len(text_so_far) else ""
                yield TokenStep(nxt, delta, lp, top, "stop")
                return
            text_so_far = text
            last = t == max_tokens - 1
            yield TokenStep(nxt, delta, lp, top, "length" if last else None)
            if last:
                return
            out = model(
                input_ids=torch.tensor([[nxt]], dtype=torch.long, device=self.device),
                past_key_values=cache,
                use_cache=True,
            )
            cache, logits = out.past_key_values, out.logits[0, -1]
