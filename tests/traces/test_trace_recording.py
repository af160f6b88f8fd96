"""Recording an agent's async chat() stream changes nothing the caller sees."""

from __future__ import annotations

import asyncio

import pytest

from dspy_rl.traces import MemorySink, RecordingAgent, TraceCollector, TracedChatMixin

CHUNKS = [
    {"type": "reasoning", "text": "look at the failing test"},
    "Running ",
    {"type": "tool_call", "tool": "pytest", "args": "-q", "status": "failure", "output": "1 failed"},
    "the tests",
    {"type": "text", "text": " and fixing."},
    object(),  # an unknown chunk type passes through untouched
]


class EchoAgent:
    """A streaming agent; counts closes to check that early exits close its stream."""

    model = "echo-1"

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.closed = 0

    async def chat(self, message, *, temperature: float = 0.0):
        try:
            for i, chunk in enumerate(CHUNKS):
                if self.fail_after is not None and i == self.fail_after:
                    raise ValueError(f"model error on {message!r} at {temperature}")
                await asyncio.sleep(0)
                yield chunk
        finally:
            self.closed += 1


async def _collect(stream):
    return [chunk async for chunk in stream]


def test_wrapper_yields_identical_chunks_and_records_a_trace():
    sink = MemorySink()
    plain = asyncio.run(_collect(EchoAgent().chat("fix it", temperature=0.5)))
    agent = RecordingAgent(EchoAgent(), TraceCollector(sink, "coder"))
    recorded = asyncio.run(_collect(agent.chat("fix it", temperature=0.5)))
    assert len(recorded) == len(plain) and all(a is b for a, b in zip(recorded, CHUNKS, strict=True))
    assert agent.model == "echo-1"  # other attributes pass through
    kinds = sorted(s.kind for s in sink.spans)
    assert kinds == ["content", "content", "prompt", "reasoning", "tool"]
    prompt = next(s for s in sink.spans if s.kind == "prompt")
    assert (
        prompt.attributes["prompt"] == "fix it"
        and prompt.attributes["response"] == "Running the tests and fixing."
    )
    assert prompt.name == "EchoAgent.chat"
    tool = next(s for s in sink.spans if s.kind == "tool")
    assert tool.name == "pytest" and tool.attributes["status"] == "failure"
    end = next(s for s in sink.spans if s.name == "trace.end")
    assert end.attributes["status"] == "ok" and end.attributes["task"] == "fix it"


def test_errors_propagate_unchanged_and_are_recorded():
    sink = MemorySink()
    agent = RecordingAgent(EchoAgent(fail_after=3), TraceCollector(sink, "coder"))
    with pytest.raises(ValueError, match="model error on 'x' at 0.0"):
        asyncio.run(_collect(agent.chat("x")))
    end = next(s for s in sink.spans if s.name == "trace.end")
    assert end.attributes["status"] == "error" and "model error" in end.attributes["metadata"]["error"]


def test_early_exit_closes_inner_stream_and_records_cancelled():
    sink = MemorySink()
    inner = EchoAgent()
    agent = RecordingAgent(inner, TraceCollector(sink, "coder"))

    async def first_two():
        stream = agent.chat("x")
        got = [await stream.__anext__(), await stream.__anext__()]
        await stream.aclose()
        return got

    assert asyncio.run(first_two()) == CHUNKS[:2]
    assert inner.closed == 1
    end = next(s for s in sink.spans if s.name == "trace.end")
    assert end.attributes["status"] == "cancelled"


def test_mixin_records_and_is_inert_without_collector():
    class Traced(TracedChatMixin, EchoAgent):
        pass

    agent = Traced()
    assert asyncio.run(_collect(agent.chat("hi"))) == CHUNKS  # no collector: plain stream
    sink = MemorySink()
    agent.trace_collector = TraceCollector(sink, "coder")
    assert asyncio.run(_collect(agent.chat("hi"))) == CHUNKS
    assert any(s.kind == "prompt" and s.name == "Traced.chat" for s in sink.spans)


def test_sink_failure_never_reaches_the_caller():
    class BrokenSink(MemorySink):
        def write(self, spans):
            raise OSError("disk full")

    agent = RecordingAgent(EchoAgent(), TraceCollector(BrokenSink(), "coder", flush_every=1))
    assert asyncio.run(_collect(agent.chat("x"))) == CHUNKS


def test_wrapping_an_object_without_chat_is_rejected():
    with pytest.raises(TypeError, match="no chat"):
        RecordingAgent(object(), TraceCollector(MemorySink(), "a"))
