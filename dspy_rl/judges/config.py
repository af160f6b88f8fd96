"""Structured config of ``dspy-rl serve judges`` (conf/serve.yaml + the conf/judges/ group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from dspy_rl.config import require
from dspy_rl.control.limiter import LimiterConfig, LimiterConfigError

JUDGE_KINDS = ("rubric", "embedding", "transformer", "llm")
AUTOSCALING_MODES = ("adaptive", "default", "fixed")


@dataclass
class JudgeSpec:
    """One judge deployment."""

    kind: str = "rubric"
    """Which judge: rubric | embedding | transformer | llm."""
    enabled: bool = True
    """Deploy this judge and include it in the ensemble."""
    weight: float = 1.0
    """Weight in the ensemble's weighted mean (renormalized over the judges that answered)."""
    min_replicas: int = 1
    """Lowest replica count (autoscaling) or the fixed count (autoscaling=fixed)."""
    max_replicas: int = 2
    """Highest replica count under autoscaling."""
    num_cpus: float = 0.5
    """CPUs reserved per replica (Ray resource accounting)."""
    max_ongoing_requests: int = 16
    """Requests one replica accepts before Serve queues them at the handle."""
    model_concurrency: int = 1
    """Model calls a replica runs at once (the rest wait; reported as queue_depth)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the judge class (e.g. checkpoint for transformer, base_url/model for llm)."""

    def check(self, key: str) -> None:
        require(self.kind in JUDGE_KINDS, f"{key}.kind", self.kind, f"one of {JUDGE_KINDS}")
        require(self.weight >= 0, f"{key}.weight", self.weight, "a number >= 0")
        require(self.min_replicas >= 1, f"{key}.min_replicas", self.min_replicas, "an int >= 1")
        require(
            self.max_replicas >= self.min_replicas,
            f"{key}.max_replicas",
            self.max_replicas,
            "an int >= min_replicas",
        )
        require(self.num_cpus >= 0, f"{key}.num_cpus", self.num_cpus, "a number >= 0")
        require(
            self.max_ongoing_requests >= 1,
            f"{key}.max_ongoing_requests",
            self.max_ongoing_requests,
            "an int >= 1",
        )
        require(
            self.model_concurrency >= 1, f"{key}.model_concurrency", self.model_concurrency, "an int >= 1"
        )
        if self.enabled and self.kind == "transformer":
            require(
                bool(self.options.get("checkpoint")),
                f"{key}.options.checkpoint",
                self.options.get("checkpoint"),
                "the path of a judge.pt written by `dspy-rl serve train-judge`",
            )
        if self.enabled and self.kind == "llm":
            for opt in ("base_url", "model"):
                require(
                    bool(self.options.get(opt)),
                    f"{key}.options.{opt}",
                    self.options.get(opt),
                    "a non-empty string",
                )


@dataclass
class TrainJudgeSpec:
    """``dspy-rl serve train-judge``: train the transformer judge on preference pairs."""

    pairs: str | None = None
    """JSONL of {"query", "chosen", "rejected"} (required)."""
    out: str | None = None
    """Directory to write judge.pt into (required)."""
    steps: int = 300
    """Optimizer steps."""
    batch_size: int = 32
    """Pairs per step."""
    lr: float = 1e-3
    """AdamW learning rate."""
    seed: int = 0
    """Sampling and init seed."""
    d_model: int = 64
    """Transformer width."""
    num_layers: int = 2
    """Encoder layers."""
    max_len: int = 256
    """Bytes of query + response the model reads."""


@dataclass
class ServeConfig:
    """``dspy-rl serve judges`` settings."""

    host: str = "127.0.0.1"
    """HTTP bind address; 127.0.0.1 unless you mean to expose the service."""
    port: int = 8000
    """HTTP port."""
    app_name: str = "judges"
    """Serve application name."""
    route_prefix: str = "/"
    """Route prefix of the FastAPI ingress."""
    deadline_s: float = 2.0
    """Per-request deadline; judges that have not answered by then are left out."""
    max_text_chars: int = 20000
    """Longest query/response/reference accepted (longer gets HTTP 413)."""
    max_batch: int = 64
    """Most items in one POST /judge/batch."""
    max_body_bytes: int = 4 << 20
    """Largest request body in bytes (larger gets HTTP 413 before it is parsed)."""
    auth_token_env: str | None = None
    """Name of an environment variable holding a bearer token; when set, every endpoint requires it."""
    autoscaling: str = "adaptive"
    """adaptive (our controller as the Serve policy) | default (Serve's policy) | fixed (min_replicas)."""
    target_ongoing_requests: float = 2.0
    """Serve default policy only: target in-flight requests per replica."""
    upscale_delay_s: float = 1.0
    """Serve waits this long with a higher decision before adding replicas."""
    downscale_delay_s: float = 5.0
    """Serve waits this long with a lower decision before removing replicas."""
    look_back_period_s: float = 2.0
    """Window over which Serve averages replica metrics."""
    metrics_interval_s: float = 0.5
    """How often replicas and handles push metrics to the Serve controller."""
    shed: bool = False
    """Ensemble skips a judge whose adaptive in-flight limit is reached instead of queueing on it."""
    shed_exempt: list[str] = field(default_factory=lambda: ["rubric"])
    """Judges never shed (cheap ones that keep a degraded answer meaningful)."""
    ensemble_replicas: int = 1
    """Replicas of the ensemble/ingress deployment."""
    blocking: bool = True
    """Keep the CLI running until Ctrl-C (false: deploy and return, Serve keeps running in the Ray cluster)."""
    ray_address: str | None = None
    """Ray cluster to connect to (None: start a local one)."""
    node_ip: str | None = None
    """Address of a local Ray instance (None: 127.0.0.1, so that no Ray process listens on another interface)."""
    control: dict[str, Any] = field(default_factory=dict)
    """LimiterConfig fields for the adaptive policy and the shedding limiters (mode, base_limit, ...)."""
    judges: dict[str, JudgeSpec] = field(default_factory=dict)
    """Judge deployments by name (conf/judges/)."""
    train_judge: TrainJudgeSpec = field(default_factory=TrainJudgeSpec)
    """Settings of the train-judge subcommand."""

    def __post_init__(self) -> None:
        require(1 <= self.port <= 65535, "port", self.port, "an int in 1..65535")
        require(self.deadline_s > 0, "deadline_s", self.deadline_s, "seconds > 0")
        require(self.max_text_chars >= 1, "max_text_chars", self.max_text_chars, "an int >= 1")
        require(self.max_batch >= 1, "max_batch", self.max_batch, "an int >= 1")
        require(self.max_body_bytes >= 1024, "max_body_bytes", self.max_body_bytes, "an int >= 1024")
        require(
            self.autoscaling in AUTOSCALING_MODES,
            "autoscaling",
            self.autoscaling,
            f"one of {AUTOSCALING_MODES}",
        )
        require(
            0 < self.metrics_interval_s < self.look_back_period_s,
            "metrics_interval_s",
            self.metrics_interval_s,
            f"seconds in (0, look_back_period_s={self.look_back_period_s})",
        )
        require(self.ensemble_replicas >= 1, "ensemble_replicas", self.ensemble_replicas, "an int >= 1")
        try:
            LimiterConfig(**self.control)
        except (LimiterConfigError, TypeError) as exc:
            require(False, "control", self.control, f"LimiterConfig fields ({exc})")
        for name, spec in self.judges.items():
            spec.check(f"judges.{name}")
        enabled = [n for n, s in self.judges.items() if s.enabled]
        require(bool(enabled), "judges", sorted(self.judges), "at least one enabled judge")
        require(
            any(self.judges[n].weight > 0 for n in enabled),
            "judges.*.weight",
            0,
            "at least one enabled weight > 0",
        )

    def limiter(self) -> LimiterConfig:
        """The controller settings as a :class:`LimiterConfig`."""
        return LimiterConfig(**self.control)

    def enabled_judges(self) -> dict[str, JudgeSpec]:
        """Enabled judges by name."""
        return {n: s for n, s in self.judges.items() if s.enabled}


ConfigStore.instance().store(name="serve_schema", node=ServeConfig)
