"""Structured config of ``dspy-rl serve policy`` (conf/serve_policy.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from dspy_rl.config import require


@dataclass
class PolicyServeConfig:
    """``dspy-rl serve policy`` settings."""

    checkpoint: str | None = None
    """A `dspy-rl train` run directory (its latest checkpoint) or a ckpt_*.pt file. Required."""
    host: str = "127.0.0.1"
    """HTTP bind address; 127.0.0.1 unless you mean to expose the service."""
    port: int = 8002
    """HTTP port."""
    max_batch_size: int = 256
    """Most decisions one policy forward pass takes (Serve dynamic batching)."""
    batch_wait_timeout_s: float = 0.002
    """How long the first request of a batch waits for others."""
    max_states: int = 1024
    """Most states in one request (more gets HTTP 413)."""
    replicas: int = 1
    """Policy replicas."""
    num_cpus: float = 0.5
    """CPUs reserved per replica (Ray resource accounting)."""
    max_ongoing_requests: int = 512
    """Requests one replica accepts at once (they wait for a batch)."""
    max_body_bytes: int = 4_000_000
    """Largest request body accepted (more gets HTTP 413)."""
    auth_token_env: str | None = None
    """Name of an environment variable holding a bearer token; when set, every endpoint requires it."""
    app_name: str = "policy"
    """Serve application name."""
    route_prefix: str = "/"
    """Route prefix of the FastAPI ingress."""
    blocking: bool = True
    """Keep the command running until Ctrl-C/SIGTERM (false: deploy and return)."""
    ray_address: str | None = None
    """Ray cluster to connect to (None: start a local one on 127.0.0.1)."""

    def __post_init__(self) -> None:
        require(bool(self.checkpoint), "checkpoint", self.checkpoint, "a `dspy-rl train` run directory")
        require(1 <= self.port <= 65535, "port", self.port, "an int in 1..65535")
        require(self.max_batch_size >= 1, "max_batch_size", self.max_batch_size, "an int >= 1")
        require(
            self.batch_wait_timeout_s >= 0, "batch_wait_timeout_s", self.batch_wait_timeout_s, "seconds >= 0"
        )
        require(self.max_states >= 1, "max_states", self.max_states, "an int >= 1")
        require(self.replicas >= 1, "replicas", self.replicas, "an int >= 1")
        require(self.max_body_bytes >= 1024, "max_body_bytes", self.max_body_bytes, "an int >= 1024")
