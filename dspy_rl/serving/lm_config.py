"""Structured config of ``dspy-rl serve lm`` (conf/serve_lm.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dspy_rl.config import require

CHAT_FORMATS = ("auto", "template", "plain")


@dataclass
class TinyLMConfig:
    """The tiny GPT-2 built when no ``model`` is given (random weights, word-level tokenizer; nothing downloaded)."""

    n_layer: int = 2
    """Transformer blocks."""
    n_embd: int = 64
    """Hidden width."""
    n_head: int = 2
    """Attention heads."""
    n_positions: int = 2048
    """Context length (prompt + completion tokens)."""
    seed: int = 0
    """Weight initialization seed."""
    vocab_text: str | None = None
    """Whitespace-separated words of the tokenizer's vocabulary (None: a small built-in list)."""


@dataclass
class LMServeConfig:
    """``dspy-rl serve lm`` settings."""

    host: str = "127.0.0.1"
    """HTTP bind address; 127.0.0.1 unless you mean to expose the service."""
    port: int = 8000
    """HTTP port."""
    model: str | None = None
    """A local Hugging Face model directory or a `dspy-rl grpo train` run directory (None: build a tiny model)."""
    model_name: str | None = None
    """Model id reported by /v1/models and accepted in requests (None: the directory name, or tiny-gpt2)."""
    strict_model: bool = False
    """Refuse requests whose 'model' is not model_name (404) instead of serving them with the loaded model."""
    device: str = "cpu"
    """Torch device of the replica (cpu or cuda; cuda also reserves one GPU per replica)."""
    chat_format: str = "auto"
    """How chat messages become a prompt: template (tokenizer's chat template), plain (role: text lines), auto."""
    default_max_tokens: int = 256
    """Completion length when a chat request gives no max_tokens."""
    max_tokens_limit: int = 1024
    """Largest max_tokens accepted (more gets HTTP 400 naming the field)."""
    max_body_bytes: int = 1_000_000
    """Largest request body accepted (more gets HTTP 413)."""
    auth_token_env: str | None = None
    """Name of an environment variable holding a bearer token; when set, every endpoint requires it."""
    app_name: str = "lm"
    """Serve application name."""
    route_prefix: str = "/"
    """Route prefix of the FastAPI ingress (endpoints are under <prefix>v1/...)."""
    replicas: int = 1
    """Model replicas."""
    num_cpus: float = 1.0
    """CPUs reserved per replica (Ray resource accounting)."""
    max_ongoing_requests: int = 32
    """Requests one replica accepts at once (generation itself runs one token step at a time)."""
    blocking: bool = True
    """Keep the command running until Ctrl-C/SIGTERM (false: deploy and return)."""
    ray_address: str | None = None
    """Ray cluster to connect to (None: start a local one on 127.0.0.1)."""
    tiny: TinyLMConfig = field(default_factory=TinyLMConfig)
    """The model built when model is None."""

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, "port", self.port, "an int in 1..65535")
        require(self.chat_format in CHAT_FORMATS, "chat_format", self.chat_format, f"one of {CHAT_FORMATS}")
        require(self.max_tokens_limit >= 1, "max_tokens_limit", self.max_tokens_limit, "an int >= 1")
        require(
            1 <= self.default_max_tokens <= self.max_tokens_limit,
            "default_max_tokens",
            self.default_max_tokens,
            f"an int in 1..max_tokens_limit={self.max_tokens_limit}",
        )
        require(self.max_body_bytes >= 1024, "max_body_bytes", self.max_body_bytes, "an int >= 1024")
        require(self.replicas >= 1, "replicas", self.replicas, "an int >= 1")
        require(self.num_cpus >= 0, "num_cpus", self.num_cpus, "a number >= 0")
        require(
            self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
            "device",
            self.device,
            "cpu or cuda",
        )

    def tiny_kwargs(self) -> dict[str, Any]:
        t = self.tiny
        return {
            "n_layer": t.n_layer,
            "n_embd": t.n_embd,
            "n_head": t.n_head,
            "n_positions": t.n_positions,
            "seed": t.seed,
            "vocab_text": t.vocab_text,
        }
