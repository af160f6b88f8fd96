"""TraceCollector: the SDK agents use to record what they do.

    collector = TraceCollector(StoreSink(TraceStore("traces.db")), agent_id="coder-1")
    with collector.trace(task="fix the failing test") as t:
        t.prompt("PlanStep", prompt="...", response="run pytest", context={"repo": "x"})
        t.tool("pytest", args="-q", status="failure", output="1 failed")
        t.content("The fix is ...")
    # on exit: a ``trace.end`` span (status, task, final answer) and, with a RewardComputer, reward spans

Spans go to a *sink*: :class:`StoreSink` writes straight to the SQLite store; the stream package's
``BusSink`` publishes them to Kafka for the ingester; :class:`MemorySink` keeps them in memory. The collector
buffers spans and hands them to the sink when a trace ends or the buffer fills (``flush_every``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dspy_rl.traces.rewards import RewardComputer
from dspy_rl.traces.spans import Span, new_id
from dspy_rl.traces.store import TRACE_END, TraceStore


class SpanSink(Protocol):
    """Where a collector sends spans."""

    def write(self, spans: Sequence[Span]) -> None:
        """Accept a batch of spans (may buffer)."""

    def flush(self) -> None:
        """Make everything accepted so far durable / delivered."""


class StoreSink:
    """Writes spans to a :class:`TraceStore` (one transaction per batch)."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store

    def write(self, spans: Sequence[Span]) -> None:
        self.store.insert_spans(spans, source="sdk")

    def flush(self) -> None:
        """Nothing to do: every write is committed."""


class MemorySink:
    """Keeps spans in a list (tests, dry runs)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    def write(self, spans: Sequence[Span]) -> None:
        self.spans.extend(spans)

    def flush(self) -> None:
        """Nothing to do."""


@dataclass
class ActiveTrace:
    """A trace being recorded; its methods add spans through the collector."""

    collector: TraceCollector
    trace_id: str
    agent_id: str
    task: str | None
    metadata: dict[str, Any]
    started_at: float = field(default_factory=time.time)
    spans: list[Span] = field(default_factory=list)
    ended: bool = False

    def add(
        self,
        kind: str,
        name: str = "",
        *,
        reward: float | None = None,
        parent_id: str | None = None,
        start_ts: float | None = None,
        end_ts: float | None = None,
        **attributes: Any,
    ) -> Span:
        """Record one span of ``kind`` with ``attributes`` and return it."""
        if self.ended:
            raise RuntimeError(f"trace {self.trace_id} has ended; start a new trace to record more spans")
        now = time.time()
        span = Span(
            kind=kind,
            trace_id=self.trace_id,
            agent_id=self.agent_id,
            name=name,
            parent_id=parent_id,
            start_ts=now if start_ts is None else start_ts,
            end_ts=end_ts,
            reward=reward,
            attributes=attributes,
        )
        self.spans.append(span)
        self.collector._record(span)
        return span

    def prompt(
        self,
        signature: str,
        prompt: str,
        response: str,
        *,
        context: dict[str, Any] | None = None,
        patch: str | None = None,
        **extra: Any,
    ) -> Span:
        """A model call: the ``signature`` (DSPy module) that was asked ``prompt`` and answered ``response``;
        ``context`` is what else the call saw (hashed by the GRPO miner), ``patch`` a code edit it proposed."""
        attrs: dict[str, Any] = {"prompt": prompt, "response": response, "context": context or {}, **extra}
        if patch is not None:
            attrs["patch"] = patch
        return self.add("prompt", signature, **attrs)

    def tool(
        self, tool: str, args: Any = None, status: str = "success", output: str = "", **extra: Any
    ) -> Span:
        """A tool call and its outcome (``success``, ``failure`` or ``empty``)."""
        return self.add("tool", tool, tool=tool, args=args, status=status, output=output, **extra)

    def reward(
        self, value: float, *, target: Span | str | None = None, source: str = "manual", **extra: Any
    ) -> Span:
        """A reward for ``target`` (a span or span id; None scores the whole trace)."""
        target_id = target.span_id if isinstance(target, Span) else target
        return self.add("reward", source, reward=float(value), parent_id=target_id, target=target_id, **extra)

    def coordination(self, to: str, message: str, status: str = "accepted", **extra: Any) -> Span:
        """A message to another agent and whether it was ``accepted``, ``rejected`` or hit a ``timeout``."""
        return self.add("coordination", "handoff", to=to, message=message, status=status, **extra)

    def content(self, text: str, **extra: Any) -> Span:
        """An answer (or part of one) the agent produced."""
        return self.add("content", "answer", text=text, **extra)

    def reasoning(self, text: str, **extra: Any) -> Span:
        """A reasoning step."""
        return self.add("reasoning", "reasoning", text=text, **extra)

    @contextlib.contextmanager
    def span(self, kind: str, name: str = "", **attributes: Any) -> Iterator[dict[str, Any]]:
        """Time a block: yields the attribute dict (add to it inside); records the span when the block ends,
        with ``error`` set if it raised."""
        start = time.time()
        attrs = dict(attributes)
        try:
            yield attrs
        except BaseException as exc:
            attrs["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.add(kind, name, start_ts=start, end_ts=time.time(), **attrs)

    def end(self, status: str = "ok", answer: str | None = None, reference: str | None = None) -> list[Span]:
        """Finish the trace; see :meth:`TraceCollector.end_trace`."""
        return self.collector.end_trace(self, status=status, answer=answer, reference=reference)


class TraceCollector:
    """Records traces for one agent and sends their spans to a sink (see module docstring).

    With a ``reward_computer``, ending a trace also records its tool / answer-quality / coordination rewards.
    Thread-safe: one collector may record several traces concurrently (one :class:`ActiveTrace` each).
    """

    def __init__(
        self,
        sink: SpanSink,
        agent_id: str,
        *,
        reward_computer: RewardComputer | None = None,
        flush_every: int = 256,
    ) -> None:
        if not agent_id:
            raise ValueError("agent_id must be a non-empty string")
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every} must be >= 1")
        self.sink = sink
        self.agent_id = agent_id
        self.reward_computer = reward_computer
        self.flush_every = flush_every
        self._buffer: list[Span] = []
        self._lock = threading.Lock()

    def start_trace(
        self, task: str | None = None, *, trace_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> ActiveTrace:
        """Begin a trace for ``task`` (the prompt of the whole episode, used by GRPO mining)."""
        return ActiveTrace(self, trace_id or new_id(), self.agent_id, task, dict(metadata or {}))

    def end_trace(
        self,
        trace: ActiveTrace,
        *,
        status: str = "ok",
        answer: str | None = None,
        reference: str | None = None,
    ) -> list[Span]:
        """Record the trace's rewards (with a reward computer) and its ``trace.end`` span, then flush.

        ``status``: ``ok`` (finished), ``success`` (reached its goal: earns the completion bonus), ``error``,
        ``cancelled``, or any label of your own; ``answer``
        is the final answer; ``reference`` an expected answer for the quality reward. Returns the reward spans.
        """
        rewards: list[Span] = []
        end_span = Span(
            kind="content",
            trace_id=trace.trace_id,
            agent_id=trace.agent_id,
            name=TRACE_END,
            start_ts=time.time(),
            attributes={"status": status, "task": trace.task, "answer": answer, "metadata": trace.metadata},
        )
        if self.reward_computer is not None:
            rewards = self.reward_computer.trace_rewards([*trace.spans, end_span], reference=reference)
            for span in rewards:
                trace.spans.append(span)
                self._record(span)
        trace.spans.append(end_span)
        self._record(end_span)
        trace.ended = True
        self.flush()
        return rewards

    @contextlib.contextmanager
    def trace(
        self, task: str | None = None, *, trace_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Iterator[ActiveTrace]:
        """``with collector.trace(task) as t:`` records spans on ``t``; ends with status ``error`` if the
        block raises (and re-raises), else ``ok`` unless ``t.end(...)`` was called inside."""
        active = self.start_trace(task, trace_id=trace_id, metadata=metadata)
        try:
            yield active
        except BaseException as exc:
            if not active.ended:
                active.metadata.setdefault("error", f"{type(exc).__name__}: {exc}")
                self.end_trace(active, status="error")
            raise
        if not active.ended:
            self.end_trace(active)

    def _record(self, span: Span) -> None:
        with self._lock:
            self._buffer.append(span)
            full = len(self._buffer) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        """Send buffered spans to the sink and flush it."""
        with self._lock:
            batch, self._buffer = self._buffer, []
        if batch:
            self.sink.write(batch)
        self.sink.flush()
