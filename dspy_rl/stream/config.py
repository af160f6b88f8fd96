"""Configuration of ``dspy-rl stream ingest|train`` (schema of ``conf/stream.yaml`` and the ``conf/stream/`` group).

The ``stream`` group picks the source: ``stream=kafka`` (the broker; ``scripts/kafka.sh start``) or
``stream=file`` (a JSONL file of span events; the embedded sample when ``stream.events_file`` is null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from dspy_rl.config import ConfigError, require
from dspy_rl.system.guard import GuardConfig
from dspy_rl.traces.mining import LEVELS
from dspy_rl.traces.store import SYNCHRONOUS_MODES, check_store_path


@dataclass
class SourceConfig:
    """Where span events come from (``conf/stream/kafka.yaml`` or ``conf/stream/file.yaml``)."""

    kind: str = "file"
    """``kafka`` (consume the agent.* topics) or ``file`` (read a JSONL file of events)."""
    bootstrap_servers: str | None = None
    """Kafka: ``host:port[,host:port]``."""
    topic_prefix: str = ""
    """Kafka: prefix of every topic name (agent.actions becomes <prefix>agent.actions)."""
    group_id: str = "dspy-rl-ingest"
    """Kafka: consumer group id."""
    events_file: str | None = None
    """File: JSONL of span events; null uses the embedded sample."""
    client: str = "auto"
    """Kafka client library for ingest and publish: ``confluent`` (librdkafka), ``kafka-python``, or ``auto``
    (confluent when installed)."""

    def __post_init__(self) -> None:
        require(self.kind in ("kafka", "file"), "stream.kind", self.kind, "'kafka' or 'file'")
        require(
            self.kind != "kafka" or bool(self.bootstrap_servers),
            "stream.bootstrap_servers",
            self.bootstrap_servers,
            "host:port of the broker (e.g. 127.0.0.1:9092) when stream.kind=kafka",
        )
        require(bool(self.group_id), "stream.group_id", self.group_id, "a non-empty consumer group id")
        if self.events_file is not None and not Path(self.events_file).is_file():
            raise ConfigError(
                f"stream.events_file={self.events_file!r} is not a file; expected a JSONL file of span events, or "
                "null for the embedded sample"
            )
        require(
            self.client in ("auto", "confluent", "kafka-python"),
            "stream.client",
            self.client,
            "auto, confluent or kafka-python",
        )


@dataclass
class IngestSettings:
    """Consumer, batching and stop settings of the Kafka ingester (``ingest.*``): declared here only;
    :class:`dspy_rl.stream.ingest.IngestConfig` adds the broker connection and topics to them."""

    workers: int = 1
    """Kafka: ingester processes in the consumer group (each takes a share of the partitions)."""
    batch_size: int = 20000
    """Records per store transaction (at most)."""
    batch_max_wait_ms: int = 200
    """Write a partial batch after this long."""
    poll_timeout_ms: int = 100
    """Longest single poll."""
    max_partition_fetch_bytes: int = 8 << 20
    """Per-partition fetch size; large fetches amortize round trips."""
    fetch_max_bytes: int = 64 << 20
    """Per-request fetch size."""
    check_crcs: bool = True
    """Verify Kafka record CRCs (costs CPU; keep on unless the benchmark says otherwise)."""
    auto_offset_reset: str = "earliest"
    """Where a new consumer group starts: ``earliest`` or ``latest``."""
    session_timeout_ms: int = 10000
    """Consumer-group session timeout: how soon a crashed ingester's partitions move to a live one (broker
    minimum 6000)."""
    pipeline_depth: int = 2
    """Batches parsed ahead of the one being written (the writer thread overlaps SQLite with polling)."""
    commit_timeout_ms: int = 30000
    """How long one offset commit may block (e.g. while the broker restarts) before it is retried later."""
    idle_timeout_s: float | None = None
    """Exit after this long without records while partitions are assigned and caught up to their high watermark
    (null: run until SIGTERM)."""
    max_events: int | None = None
    """Exit after this many records (null: no limit)."""
    max_seconds: float | None = None
    """Exit after this long (null: no limit)."""
    metrics_interval_s: float = 5.0
    """Log (and append to <run_dir>/ingest_metrics.jsonl) metrics this often."""
    broker_wait_s: float = 60.0
    """Kafka: at start, how long to retry a broker that is down (1, 2, 4, 8, 15, 30 s apart) before giving up."""

    def __post_init__(self) -> None:
        checks = (
            (self.workers >= 1, "workers", "an int >= 1"),
            (self.batch_size >= 1, "batch_size", "an int >= 1"),
            (self.pipeline_depth >= 1, "pipeline_depth", "an int >= 1"),
            (self.batch_max_wait_ms >= 0, "batch_max_wait_ms", "an int >= 0"),
            (self.poll_timeout_ms >= 1, "poll_timeout_ms", "an int >= 1"),
            (self.auto_offset_reset in ("earliest", "latest"), "auto_offset_reset", "earliest or latest"),
            (self.idle_timeout_s is None or self.idle_timeout_s > 0, "idle_timeout_s", "null or a float > 0"),
            (self.max_events is None or self.max_events >= 1, "max_events", "null or an int >= 1"),
            (self.max_seconds is None or self.max_seconds > 0, "max_seconds", "null or a float > 0"),
            (self.metrics_interval_s > 0, "metrics_interval_s", "a float > 0"),
            (self.broker_wait_s >= 0, "broker_wait_s", "a float >= 0"),
            (self.session_timeout_ms >= 6000, "session_timeout_ms", "an int >= 6000 (the broker's minimum)"),
        )
        for ok, key, allowed in checks:
            require(ok, f"ingest.{key}", getattr(self, key), allowed)


@dataclass
class LoopMineSettings:
    """How each continuous iteration mines groups."""

    level: str = "signature"
    """Which level trains the policy: global, signature or patch."""
    hours: float | None = None
    """Look-back window (null: everything in the store; the embedded sample has fixed past timestamps)."""
    min_candidates: int = 2
    """Smallest group kept."""
    max_candidates: int = 16
    """Largest group kept (the most recent candidates)."""

    def __post_init__(self) -> None:
        require(self.level in LEVELS, "mine.level", self.level, f"one of {list(LEVELS)}")
        require(self.hours is None or self.hours > 0, "mine.hours", self.hours, "null or > 0")
        require(self.min_candidates >= 2, "mine.min_candidates", self.min_candidates, "an int >= 2")
        require(
            self.max_candidates >= self.min_candidates,
            "mine.max_candidates",
            self.max_candidates,
            "an int >= mine.min_candidates",
        )


@dataclass
class LoopTrainSettings:
    """The GRPO update of each continuous iteration (bag-of-words text policy)."""

    batch_groups: int = 8
    """Groups per update."""
    lr: float = 0.05
    """AdamW learning rate."""
    kl_target: float = 0.02
    """KL coefficient after warm-up (0: no reference model)."""
    kl_warmup: int = 5
    """Iterations over which the KL coefficient ramps up."""
    updates_per_batch: int = 2
    """Optimizer steps per iteration."""
    seed: int = 0
    """Seed for group sampling and initialization."""
    model: str = "bow"
    """Text policy: ``bow`` (bag-of-words), ``tiny-gpt2`` (a small GPT-2 built from a config over the mined
    texts), or a local bow / Hugging Face model directory."""
    device: str = "cpu"
    """Device of the text policy: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``."""
    keep_checkpoints: int = 3
    """Checkpoints kept per level (``ckpts_<level>/``)."""

    def __post_init__(self) -> None:
        require(self.batch_groups >= 1, "train.batch_groups", self.batch_groups, "an int >= 1")
        require(bool(self.model), "train.model", self.model, "bow, tiny-gpt2 or a model directory")
        require(
            self.device in ("cpu", "auto") or self.device.startswith("cuda"),
            "train.device",
            self.device,
            "'cpu', 'auto', 'cuda' or 'cuda:N'",
        )
        require(self.keep_checkpoints >= 1, "train.keep_checkpoints", self.keep_checkpoints, "an int >= 1")
        require(self.lr > 0, "train.lr", self.lr, "a float > 0")
        require(self.kl_target >= 0, "train.kl_target", self.kl_target, "a float >= 0")
        require(self.kl_warmup >= 0, "train.kl_warmup", self.kl_warmup, "an int >= 0")
        require(self.updates_per_batch >= 1, "train.updates_per_batch", self.updates_per_batch, "an int >= 1")


@dataclass
class AutoSettings:
    """``dspy-rl stream auto``: mine + train cycles on a cadence (dspy_rl/stream/auto.py)."""

    period_sec: float = 600.0
    """Seconds from the start of one cycle to the start of the next."""
    min_groups: int = 32
    """A level trains only once this many new groups are mined; fewer wait (accumulate) for a later cycle."""
    hierarchical: bool = False
    """Train one policy per level (global, signature, patch), each in ``ckpts_<level>/``; false: ``mine.level``."""
    state_dir: str = "runs/auto"
    """state.json, cycles.jsonl, control.json, groups/ and ckpts_<level>/ (a restart resumes from here)."""
    max_cycles: int | None = None
    """Exit once this many cycles are committed in the state dir (null: run until SIGTERM)."""
    paused: bool = False
    """Start paused: serve the HTTP control and wait for ``POST /start``."""
    http_port: int | None = None
    """Port of the control API on ``http_host`` (0: a free port, written to control.json; null: no API)."""
    http_host: str = "127.0.0.1"
    """Interface of the control API (loopback unless you mean it)."""
    http_token: str | None = None
    """Bearer token the control API requires (null: none; default from $DSPY_RL_AUTO_TOKEN)."""
    apply_policy: bool = False
    """After a trained cycle, run ``dspy-rl grpo apply-policy`` on ``workspace`` (needs issue 16's command)."""
    workspace: str | None = None
    """The agent workspace ``--apply-policy`` writes the policy into."""

    def __post_init__(self) -> None:
        require(self.period_sec >= 0, "auto.period_sec", self.period_sec, "a float >= 0")
        require(self.min_groups >= 1, "auto.min_groups", self.min_groups, "an int >= 1")
        require(bool(self.state_dir), "auto.state_dir", self.state_dir, "a directory")
        require(
            self.max_cycles is None or self.max_cycles >= 1,
            "auto.max_cycles",
            self.max_cycles,
            "null or >= 1",
        )
        require(
            self.http_port is None or 0 <= self.http_port <= 65535,
            "auto.http_port",
            self.http_port,
            "null or a port in [0, 65535] (0: a free port)",
        )


@dataclass
class StreamConfig:
    """``dspy-rl stream ingest`` and ``dspy-rl stream train``."""

    stream: SourceConfig = field(default_factory=SourceConfig)
    """Event source (config group ``stream``: kafka or file)."""
    store: str = "runs/traces.db"
    """SQLite trace store file."""
    synchronous: str = "FULL"
    """SQLite durability per committed batch: FULL (survives power loss), NORMAL (survives a process crash)."""
    run_dir: str | None = None
    """Where `stream train` writes groups, metrics and the policy (default runs/stream/<timestamp>)."""
    ingest: IngestSettings = field(default_factory=IngestSettings)
    """Ingester settings."""
    continuous: bool = False
    """`stream train`: loop ingest → mine → train → publish for max_iterations (false: one iteration)."""
    max_iterations: int = 10
    """`stream train --continuous`: number of iterations."""
    iteration_events: int = 2000
    """Events ingested per iteration (at most)."""
    iteration_seconds: float = 5.0
    """Kafka: longest ingest phase of one iteration."""
    mine: LoopMineSettings = field(default_factory=LoopMineSettings)
    """Mining of each iteration."""
    train: LoopTrainSettings = field(default_factory=LoopTrainSettings)
    """GRPO update of each iteration."""
    publish_metrics: bool = True
    """Publish each iteration's metrics to agent.metrics (Kafka, or <run_dir>/bus/agent.metrics.jsonl)."""
    guard: GuardConfig = field(default_factory=GuardConfig)
    """Capacity guard: checked before ``stream train`` and before every ``stream auto`` cycle."""
    rl_steps: int = 0
    """`stream train`: PPO env steps in the simulator per iteration (``dspy-rl train`` continued in
    <run_dir>/rl; 0: no PPO phase)."""
    rl_overrides: list[str] = field(default_factory=lambda: ["runtime.num_env_runners=0"])
    """`stream train`: Hydra overrides of conf/train.yaml for the PPO phase (e.g. ``env=easy``, ``env.num_envs=64``)."""
    grpo_steps: int | None = 1
    """`stream train`: GRPO updates per iteration on its mined groups (null: one pass over them)."""
    keep_group_files: int = 3
    """Mined group files kept (newest iterations / cycles); older ones are deleted."""
    auto: AutoSettings = field(default_factory=AutoSettings)
    """``stream auto`` settings."""

    def __post_init__(self) -> None:
        require(bool(self.store), "store", self.store, "a path to the SQLite trace store")
        check_store_path(self.store, "store")
        require(
            self.synchronous.upper() in SYNCHRONOUS_MODES,
            "synchronous",
            self.synchronous,
            f"one of {list(SYNCHRONOUS_MODES)}",
        )
        require(self.max_iterations >= 1, "max_iterations", self.max_iterations, "an int >= 1")
        require(self.iteration_events >= 1, "iteration_events", self.iteration_events, "an int >= 1")
        require(self.iteration_seconds > 0, "iteration_seconds", self.iteration_seconds, "a float > 0")
        require(self.rl_steps >= 0, "rl_steps", self.rl_steps, "an int >= 0 (0: no PPO phase)")
        require(
            self.grpo_steps is None or self.grpo_steps >= 1,
            "grpo_steps",
            self.grpo_steps,
            "null or an int >= 1",
        )
        require(self.keep_group_files >= 1, "keep_group_files", self.keep_group_files, "an int >= 1")


ConfigStore.instance().store(name="stream_schema", node=StreamConfig)
