"""Spans: the unit of trace data, and their wire format on the Kafka topics.

A trace is one agent episode (``trace_id``); it is made of spans, each one thing that happened: a ``prompt``
(a model call: prompt in, response out), a ``tool`` call, a ``reward`` record, a ``coordination`` message
between agents, a ``content`` answer, a ``reasoning`` step. Every span has a globally unique ``span_id`` which
is also its *event id*: the store is idempotent on it, so redelivered events are stored once.

On the wire a span is one JSON object per Kafka message. The topic follows from the kind
(:data:`TOPIC_OF_KIND`): model calls, answers, reasoning and coordination go to ``agent.actions``, tool calls to
``agent.tool_usage``, rewards to ``agent.rewards``. :func:`parse_event` validates a raw message and raises
:class:`MalformedEvent` with a human-readable reason (which the ingester sends to the dead-letter topic).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

try:  # orjson parses ~3x faster; the standard library is the fallback.
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

SPAN_KINDS = ("prompt", "tool", "reward", "coordination", "content", "reasoning")

TOPIC_ACTIONS = "agent.actions"
TOPIC_REWARDS = "agent.rewards"
TOPIC_TOOL_USAGE = "agent.tool_usage"
TOPIC_DLQ = "agent.dlq"
TOPIC_METRICS = "agent.metrics"
INGEST_TOPICS = (TOPIC_ACTIONS, TOPIC_REWARDS, TOPIC_TOOL_USAGE)

TOPIC_OF_KIND = {
    "prompt": TOPIC_ACTIONS,
    "content": TOPIC_ACTIONS,
    "reasoning": TOPIC_ACTIONS,
    "coordination": TOPIC_ACTIONS,
    "tool": TOPIC_TOOL_USAGE,
    "reward": TOPIC_REWARDS,
}

#: Wire schema version written in every event (``"v"``); parse_event accepts these.
WIRE_VERSIONS = (1,)
MAX_ID_LEN = 256
# Timestamps are unix seconds; anything outside [2000-01-01, 2200-01-01) is a unit or encoding error.
MIN_TS, MAX_TS = 946684800.0, 7258118400.0
MAX_EVENT_BYTES = 1 << 20


class MalformedEvent(ValueError):
    """A message that is not a valid span event; ``str(exc)`` is the reason sent to the dead-letter topic and
    ``kind`` its class (one of :data:`MALFORMED_KINDS`), what metrics count by: a bounded set of keys, however
    many distinct messages arrive."""

    def __init__(self, reason: str, kind: str = "invalid_event") -> None:
        super().__init__(reason)
        self.kind = kind if kind in MALFORMED_KINDS else "invalid_event"


#: Every ``MalformedEvent.kind``.
MALFORMED_KINDS = frozenset(
    {
        "invalid_event", "empty", "too_large", "not_utf8", "too_deep", "invalid_json", "not_object",
        "bad_version", "bad_kind", "wrong_topic", "bad_id", "bad_name", "bad_number", "non_finite", "bad_ts",
        "bad_end_ts", "bad_attributes",
    }
)  # fmt: skip


def new_id() -> str:
    """A fresh random span/trace id (32 hex chars)."""
    return uuid.uuid4().hex


@dataclass
class Span:
    """One recorded step of an agent episode."""

    kind: str
    """One of :data:`SPAN_KINDS`."""
    trace_id: str
    """The episode this span belongs to."""
    agent_id: str
    """The agent that produced it."""
    name: str = ""
    """Free-form label: the DSPy signature of a model call, the tool name, the reward source."""
    span_id: str = field(default_factory=new_id)
    """Globally unique; doubles as the event id the store deduplicates on."""
    parent_id: str | None = None
    """Enclosing span, if any (a tool call made while answering a prompt)."""
    start_ts: float = field(default_factory=time.time)
    """Unix seconds when the span started."""
    end_ts: float | None = None
    """Unix seconds when it ended (None while open or for instantaneous records)."""
    reward: float | None = None
    """Scalar reward carried by the span (reward spans; optional on others)."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Kind-specific payload: prompt/response/signature/context for prompts, tool/args/status for tools,
    target span and components for rewards, from/to/status for coordination."""

    @property
    def topic(self) -> str:
        """The Kafka topic this span is published on."""
        return TOPIC_OF_KIND[self.kind]

    def to_event(self) -> dict[str, Any]:
        """The wire dict (see module docstring)."""
        return {
            "v": 1,
            "event_id": self.span_id,
            "trace_id": self.trace_id,
            "agent_id": self.agent_id,
            "kind": self.kind,
            "name": self.name,
            "parent_id": self.parent_id,
            "ts": self.start_ts,
            "end_ts": self.end_ts,
            "reward": self.reward,
            "attributes": self.attributes,
        }

    def to_json_bytes(self) -> bytes:
        """The wire encoding: UTF-8 JSON of :meth:`to_event`."""
        return json.dumps(self.to_event(), separators=(",", ":"), allow_nan=False).encode()


def _loads(raw: bytes) -> Any:
    if _orjson is not None:
        return _orjson.loads(raw)
    return json.loads(raw)


def dumps_compact(obj: Any) -> str:
    """Compact JSON text (orjson when installed); NaN/Infinity are rejected."""
    if _orjson is not None:
        return _orjson.dumps(obj).decode()
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


#: The validated fields of one event, in the store's column order:
#: (span_id, trace_id, agent_id, kind, name, parent_id, start_ts, end_ts, reward, attributes).
SpanFields = tuple[str, str, str, str, str, "str | None", float, "float | None", "float | None", dict]


def _bad_id(key: str, value: Any) -> MalformedEvent:
    if isinstance(value, str) and value:
        return MalformedEvent(
            f"field {key!r} is {len(value)} chars long; the limit is {MAX_ID_LEN}", "bad_id"
        )
    return MalformedEvent(f"field {key!r} must be a non-empty string, got {type(value).__name__}", "bad_id")


def _check_number(value: Any, key: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    # bool is an int subclass; a boolean reward or timestamp is a producer bug.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedEvent(f"field {key!r} must be a number, got {type(value).__name__}", "bad_number")
    number = float(value)
    if not math.isfinite(number):
        raise MalformedEvent(f"field {key!r} must be finite, got {value!r}", "non_finite")
    return number


def validate_event(event: Any, topic: str | None = None) -> SpanFields:
    """Check a decoded wire dict; returns its :data:`SpanFields` or raises :class:`MalformedEvent`.

    This runs once per ingested message, so the common path is kept to plain comparisons.
    """
    if type(event) is not dict:
        raise MalformedEvent(f"event must be a JSON object, got {type(event).__name__}", "not_object")
    version = event.get("v", 1)
    if version not in WIRE_VERSIONS or isinstance(version, bool):
        raise MalformedEvent(
            f"unsupported wire version {version!r}; expected one of {WIRE_VERSIONS}", "bad_version"
        )
    kind = event.get("kind")
    expected_topic = TOPIC_OF_KIND.get(kind) if isinstance(kind, str) else None
    if expected_topic is None:
        raise MalformedEvent(f"field 'kind' must be one of {SPAN_KINDS}, got {kind!r}", "bad_kind")
    if topic is not None and not topic.endswith(expected_topic):
        raise MalformedEvent(
            f"kind {kind!r} belongs on topic {expected_topic!r}, not {topic!r}", "wrong_topic"
        )
    ids = []
    for key in ("event_id", "trace_id", "agent_id"):
        value = event.get(key)
        if type(value) is not str or not 0 < len(value) <= MAX_ID_LEN:
            raise _bad_id(key, value)
        ids.append(value)
    parent_id = event.get("parent_id")
    if parent_id is not None and (type(parent_id) is not str or not 0 < len(parent_id) <= MAX_ID_LEN):
        raise _bad_id("parent_id", parent_id)
    name = event.get("name", "")
    if type(name) is not str:
        raise MalformedEvent(f"field 'name' must be a string, got {type(name).__name__}", "bad_name")
    ts = _check_number(event.get("ts"), "ts", optional=False)
    if not MIN_TS <= ts < MAX_TS:
        raise MalformedEvent(f"field 'ts'={ts!r} is not unix seconds between 2000 and 2200", "bad_ts")
    end_ts = _check_number(event.get("end_ts"), "end_ts", optional=True)
    if end_ts is not None and end_ts < ts:
        raise MalformedEvent(f"field 'end_ts'={end_ts!r} is before 'ts'={ts!r}", "bad_end_ts")
    reward = _check_number(event.get("reward"), "reward", optional=kind != "reward")
    attributes = event.get("attributes")
    if attributes is None:
        attributes = {}
    elif type(attributes) is not dict:
        raise MalformedEvent(
            f"field 'attributes' must be an object, got {type(attributes).__name__}", "bad_attributes"
        )
    return (ids[0], ids[1], ids[2], kind, name, parent_id, ts, end_ts, reward, attributes)


def span_from_event(event: Any, topic: str | None = None) -> Span:
    """Validate a decoded wire dict and build the :class:`Span`; raises :class:`MalformedEvent`."""
    span_id, trace_id, agent_id, kind, name, parent_id, ts, end_ts, reward, attributes = validate_event(
        event, topic
    )
    return Span(
        kind=kind,
        trace_id=trace_id,
        agent_id=agent_id,
        name=name,
        span_id=span_id,
        parent_id=parent_id,
        start_ts=ts,
        end_ts=end_ts,
        reward=reward,
        attributes=attributes,
    )


def decode_event(raw: bytes | None, topic: str | None = None) -> SpanFields:
    """Decode and validate one Kafka message value; raises :class:`MalformedEvent` with the reason."""
    if raw is None:
        raise MalformedEvent("empty message (null value)", "empty")
    if len(raw) > MAX_EVENT_BYTES:
        raise MalformedEvent(f"message is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}", "too_large")
    try:
        event = _loads(raw)
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"not UTF-8: {exc}", "not_utf8") from None
    except RecursionError:
        raise MalformedEvent("JSON nested too deeply", "too_deep") from None
    except ValueError as exc:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        raise MalformedEvent(f"invalid JSON: {exc}", "invalid_json") from None
    return validate_event(event, topic)


def parse_event(raw: bytes | None, topic: str | None = None) -> Span:
    """Like :func:`decode_event`, but returns a :class:`Span`."""
    span_id, trace_id, agent_id, kind, name, parent_id, ts, end_ts, reward, attributes = decode_event(
        raw, topic
    )
    return Span(kind, trace_id, agent_id, name, span_id, parent_id, ts, end_ts, reward, attributes)


def decode_event_row(raw: bytes | None, topic: str | None = None) -> tuple:
    """:func:`decode_event` with the attributes re-encoded as compact JSON text: a row for
    :meth:`~dspy_rl.traces.store.TraceStore.insert_rows`. Attributes that cannot be re-encoded (e.g. nested
    deeper than the encoder allows) make the event malformed rather than failing the whole batch later."""
    fields = decode_event(raw, topic)
    try:
        attributes = dumps_compact(fields[9])
    except (TypeError, ValueError, RecursionError) as exc:
        raise MalformedEvent(f"attributes cannot be stored as JSON: {exc}", "bad_attributes") from None
    return (*fields[:9], attributes)


def span_row(span: Span) -> tuple:
    """The store row of a :class:`Span` (attributes as compact JSON text)."""
    return (
        span.span_id,
        span.trace_id,
        span.agent_id,
        span.kind,
        span.name,
        span.parent_id,
        span.start_ts,
        span.end_ts,
        span.reward,
        dumps_compact(span.attributes),
    )
