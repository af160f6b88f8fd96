"""Traces: the SDK agents record with, the SQLite store, JSON export and GRPO mining.

``TraceCollector`` records spans (prompt, tool, reward, coordination, content, reasoning) into a sink;
``TraceStore`` is the SQLite store (WAL, versioned schema, idempotent on event id); ``RewardComputer`` scores
traces; ``RecordingAgent`` / ``TracedChatMixin`` record an agent's async ``chat()`` stream;
``RLAgentMixin`` / ``RLOrchestratorMixin`` (switched by ``RLConfig``) record any agent's ``chat()``, tools and
coordination events; ``export_traces`` writes JSON files; :mod:`dspy_rl.traces.mining` builds GRPO groups.
"""

from dspy_rl.traces.agents import RLAgentMixin, RLConfig, RLOrchestratorMixin
from dspy_rl.traces.collector import ActiveTrace, MemorySink, SpanSink, StoreSink, TraceCollector
from dspy_rl.traces.export import export_traces
from dspy_rl.traces.recording import RecordingAgent, TracedChatMixin, record_stream
from dspy_rl.traces.rewards import RewardComputer, RewardConfig
from dspy_rl.traces.spans import SPAN_KINDS, MalformedEvent, Span, parse_event
from dspy_rl.traces.store import TraceRecord, TraceStore

__all__ = [
    "SPAN_KINDS",
    "ActiveTrace",
    "MalformedEvent",
    "MemorySink",
    "RLAgentMixin",
    "RLConfig",
    "RLOrchestratorMixin",
    "RecordingAgent",
    "RewardComputer",
    "RewardConfig",
    "Span",
    "SpanSink",
    "StoreSink",
    "TraceCollector",
    "TraceRecord",
    "TraceStore",
    "TracedChatMixin",
    "export_traces",
    "parse_event",
    "record_stream",
]
