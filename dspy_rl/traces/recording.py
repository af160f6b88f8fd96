"""Record an agent's streaming ``chat()`` without changing what it yields.

Agents stream replies as an async iterator of chunks: text (``str``) and structured events (``dict`` with a
``type``: ``"text"``/``"content"``, ``"reasoning"``, ``"tool_call"``/``"tool"``). Two ways to trace one:

* ``RecordingAgent(agent, collector)`` wraps an existing object; every other attribute passes through;
* ``class Traced(TracedChatMixin, MyAgent)`` with ``trace_collector`` set records every ``chat()`` call.

Each call becomes one trace: a ``prompt`` span (signature, message, the concatenated text), a ``reasoning`` or
``tool`` span per such chunk, a ``content`` span with the full answer, and the ``trace.end`` span with status
``ok``, ``error`` (the stream raised; the exception is re-raised unchanged) or ``cancelled`` (the consumer stopped
early; the inner stream is closed). The chunks are yielded as the very same objects, in order; recording
problems are logged and never reach the caller.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from dspy_rl.traces.collector import ActiveTrace, TraceCollector

logger = logging.getLogger(__name__)


class _Recorder:
    """Accumulates the chunks of one chat call and writes the trace at the end (never raises)."""

    def __init__(self, collector: TraceCollector, signature: str, message: Any) -> None:
        self.message = message if isinstance(message, str) else repr(message)
        self.signature = signature
        self.start = time.time()
        self.text: list[str] = []
        self.trace: ActiveTrace | None = None
        try:
            self.trace = collector.start_trace(task=self.message)
        except Exception:
            logger.exception("trace recording disabled for this chat call: start_trace failed")

    def observe(self, chunk: Any) -> None:
        if self.trace is None:
            return
        try:
            if isinstance(chunk, str):
                self.text.append(chunk)
            elif isinstance(chunk, Mapping):
                kind = chunk.get("type")
                if kind in ("text", "content"):
                    self.text.append(str(chunk.get("text", "")))
                elif kind == "reasoning":
                    self.trace.reasoning(str(chunk.get("text", "")))
                elif kind in ("tool", "tool_call"):
                    name = str(chunk.get("tool") or chunk.get("name") or "unknown")
                    self.trace.tool(
                        name,
                        args=chunk.get("args"),
                        status=str(chunk.get("status", "success")),
                        output=str(chunk.get("output", "")),
                    )
        except Exception:
            logger.exception("could not record a chat chunk; continuing without it")

    def finish(self, status: str, error: BaseException | None = None) -> None:
        if self.trace is None:
            return
        try:
            response = "".join(self.text)
            self.trace.add(
                "prompt",
                self.signature,
                start_ts=self.start,
                end_ts=time.time(),
                prompt=self.message,
                response=response,
                context={},
            )
            if response:
                self.trace.content(response)
            if error is not None:
                self.trace.metadata["error"] = f"{type(error).__name__}: {error}"
            self.trace.end(status=status, answer=response)
        except Exception:
            logger.exception("could not write the trace of a chat call")


async def record_stream(
    stream: AsyncIterator[Any], collector: TraceCollector, message: Any, signature: str = "chat"
) -> AsyncIterator[Any]:
    """Yield every chunk of ``stream`` unchanged while recording the call as a trace (see module docstring)."""
    if not hasattr(stream, "__anext__"):
        raise TypeError(
            f"chat() returned {type(stream).__name__}; a recorded chat() must return an async iterator of chunks"
        )
    recorder = _Recorder(collector, signature, message)
    status, error = "ok", None
    try:
        async for chunk in stream:
            recorder.observe(chunk)
            yield chunk
    except GeneratorExit:
        status = "cancelled"
        raise
    except BaseException as exc:
        status, error = "error", exc
        raise
    finally:
        if status == "cancelled" and hasattr(stream, "aclose"):
            await stream.aclose()
        recorder.finish(status, error)


class RecordingAgent:
    """Wraps ``agent`` so that ``chat()`` is recorded; every other attribute is the agent's own."""

    def __init__(self, agent: Any, collector: TraceCollector, signature: str | None = None) -> None:
        if not callable(getattr(agent, "chat", None)):
            raise TypeError(f"{type(agent).__name__} has no chat() method to record")
        self._agent = agent
        self._collector = collector
        self._signature = signature or f"{type(agent).__name__}.chat"

    def chat(self, message: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The agent's ``chat`` stream, recorded."""
        return record_stream(
            self._agent.chat(message, *args, **kwargs), self._collector, message, self._signature
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)


class TracedChatMixin:
    """Mixin: put it before the agent class; set ``trace_collector`` (class or instance) to record."""

    trace_collector: TraceCollector | None = None
    trace_signature: str | None = None

    def chat(self, message: Any, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The parent's ``chat`` stream, recorded when ``trace_collector`` is set."""
        stream = super().chat(message, *args, **kwargs)  # type: ignore[misc]
        if self.trace_collector is None:
            return stream
        signature = self.trace_signature or f"{type(self).__name__}.chat"
        return record_stream(stream, self.trace_collector, message, signature)
