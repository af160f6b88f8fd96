"""Structured config of ``dspy-rl serve proxy`` (conf/serve_proxy.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dspy_rl.config import require

SINKS = ("store", "kafka")


@dataclass
class ProxyKafkaConfig:
    """Kafka settings used when ``sink=kafka`` (``stream=kafka``)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Broker list host:port[,host:port]."""
    topic_prefix: str = ""
    """Prepended to agent.actions / agent.tool_usage / agent.rewards."""


@dataclass
class ProxyConfig:
    """``dspy-rl serve proxy`` settings."""

    upstream: str | None = None
    """Base URL of the OpenAI-compatible upstream, with its /v1 (e.g. http://127.0.0.1:8300/v1). Required."""
    host: str = "127.0.0.1"
    """HTTP bind address; 127.0.0.1 unless you mean to expose the service."""
    port: int = 8001
    """HTTP port."""
    sink: str = "store"
    """Where records go: store (the SQLite trace store at `store`) or kafka (the agent.* topics). On the command
    line also ``stream=kafka`` (``stream`` names a config group elsewhere, so the CLI passes it on as ``sink``)."""
    store: str | None = "runs/traces.db"
    """SQLite trace store file (sink=store)."""
    kafka: ProxyKafkaConfig = field(default_factory=ProxyKafkaConfig)
    """Broker settings (sink=kafka)."""
    spool_dir: str = "runs/proxy-spool"
    """Durable local buffer: every record is fsynced here before the reply, then delivered; survives sink outages."""
    deliver_timeout_s: float = 2.0
    """How long one delivery attempt to the store/broker may take before it counts as down."""
    agent_id: str = "proxy"
    """Agent id of the recorded spans when the request has no agent header."""
    trace_header: str = "x-trace-id"
    """Request header carrying the trace id; without it, one trace per conversation (hash of its opening turns)."""
    agent_header: str = "x-agent-id"
    """Request header carrying the agent id."""
    upstream_key_env: str | None = None
    """Environment variable with the upstream's API key (None: forward the client's Authorization header when
    the proxy has no token of its own)."""
    timeout_s: float = 120.0
    """Upstream request timeout."""
    max_body_bytes: int = 4_000_000
    """Largest request body accepted (more gets HTTP 413)."""
    auth_token_env: str | None = None
    """Name of an environment variable holding the proxy's bearer token; when set, every endpoint requires it."""
    app_name: str = "proxy"
    """Serve application name."""
    route_prefix: str = "/"
    """Route prefix of the FastAPI ingress."""
    blocking: bool = True
    """Keep the command running until Ctrl-C/SIGTERM (false: deploy and return)."""
    ray_address: str | None = None
    """Ray cluster to connect to (None: start a local one on 127.0.0.1)."""

    def __post_init__(self) -> None:
        require(
            bool(self.upstream) and str(self.upstream).startswith(("http://", "https://")),
            "upstream",
            self.upstream,
            "the upstream's base URL, e.g. upstream=http://127.0.0.1:8300/v1",
        )
        require(1 <= self.port <= 65535, "port", self.port, "an int in 1..65535")
        require(self.sink in SINKS, "stream", self.sink, f"one of {SINKS}")
        if self.sink == "store":
            require(bool(self.store), "store", self.store, "a SQLite file path such as store=runs/traces.db")
        require(bool(self.spool_dir), "spool_dir", self.spool_dir, "a directory for the durable spool")
        require(self.deliver_timeout_s > 0, "deliver_timeout_s", self.deliver_timeout_s, "seconds > 0")
        require(self.timeout_s > 0, "timeout_s", self.timeout_s, "seconds > 0")
        require(self.max_body_bytes >= 1024, "max_body_bytes", self.max_body_bytes, "an int >= 1024")
        require(bool(self.agent_id), "agent_id", self.agent_id, "a non-empty string")
