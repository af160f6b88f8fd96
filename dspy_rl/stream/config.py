"""Configuration of ``dspy-rl stream ingest|train`` (schema of ``conf/stream.yaml`` and the ``conf/stream/`` group).

The ``stream`` group picks the source: ``stream=kafka`` (the broker; ``scripts/kafka.sh start``) or
``stream=file`` (a JSONL file of span events; the embedded sample when ``stream.events_file`` is null).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.config_store import ConfigStore

from dspy_rl.config import ConfigError, require
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

    def __post_init__(self) -> None:
        require(self.batch_groups >= 1, "train.batch_groups", self.batch_groups, "an int >= 1")
        require(self.lr > 0, "train.lr", self.lr, "a float > 0")
        require(self.kl_target >= 0, "train.kl_target", self.kl_target, "a float >= 0")
        require(self.kl_warmup >= 0, "train.kl_warmup", self.kl_warmup, "an int >= 0")
        require(self.updates_per_batch >= 1, "train.updates_per_batch", self.updates_per_batch, "an int >= 1")


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


ConfigStore.instance().store(name="stream_schema", node=StreamConfig)
