"""Agent wrappers of the trace SDK: ``RLAgentMixin`` and ``RLOrchestratorMixin``, switched by :class:`RLConfig`.

Put the mixin before the agent class and give it a sink (or store)::

    class MyAgent(RLAgentMixin, BaseAgent): ...
    agent = MyAgent(...)
    agent.enable_rl_tracing(TraceStore("runs/traces.db"), agent_id="coder-1", config=RLConfig(enable_rl=True))

Every ``chat()`` call then becomes one trace, whether ``chat()`` returns a value, a generator or an async generator
(the chunks are passed through as the very same objects, in order):

* a ``tool`` span per tool the agent runs through :meth:`RLAgentMixin.rl_tool` (status ``success``, ``failure``
  when it raised, ``empty`` when it returned nothing) and per tool call it reports itself (a ``tool_calls`` list in
  a returned message, or a ``{"type": "tool_call", ...}`` chunk);
* a ``reasoning`` span per reasoning text (``reasoning`` / ``reasoning_content`` of a message, ``{"type":
  "reasoning"}`` chunks);
* a ``prompt`` span (message in, full text out: what GRPO mining groups) and a ``content`` span with the answer
  and, for a stream, every chunk it yielded (``attributes.chunks``, ``num_chunks``);
* the ``trace.end`` span (status ``ok``, ``error`` when chat raised: re-raised unchanged, ``cancelled`` when the
  consumer stopped a stream early) and, unless ``collect_only``, the reward spans of the shared scheme
  (:mod:`dspy_rl.traces.rewards`), each family switched by its ``enable_*`` flag.

``RLOrchestratorMixin`` adds coordination events inside a ``chat()``: :meth:`~RLOrchestratorMixin.rl_answer`,
:meth:`~RLOrchestratorMixin.rl_vote`, :meth:`~RLOrchestratorMixin.rl_restart`; their trace earns the coordination
reward (quality x2, consensus +1 / -0.5, efficiency, token penalty) and a voting reward per vote.

With ``enable_rl=False`` (the default) ``chat()`` hands the parent's return value back untouched and ``rl_tool``
just calls the tool: nothing is recorded. One instance records one ``chat()`` at a time (the current trace is an
instance attribute); use one agent instance per concurrent conversation. Recording problems are logged, never raised.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dspy_rl.traces.collector import ActiveTrace, SpanSink, StoreSink, TraceCollector
from dspy_rl.traces.rewards import ANSWER, RESTART, VOTE, RewardComputer, RewardConfig
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 4000


@dataclass(frozen=True)
class RLConfig:
    """Switches of the agent wrappers."""

    enable_rl: bool = False
    """Record ``chat()`` calls as traces; False: no recording at all (the wrapped call is returned untouched)."""
    collect_only: bool = False
    """Record spans but compute no rewards (score later, e.g. with a judge)."""
    enable_tool_rewards: bool = True
    """Reward every tool call: +1 success, -1 failure, -0.5 empty."""
    enable_answer_quality_rewards: bool = True
    """Reward every answer by quality: structure 0-0.3, depth 0-0.4, similarity to the reference 0-0.3."""
    enable_coordination_rewards: bool = True
    """Reward coordination (orchestrators): quality x2, consensus +1 / -0.5, efficiency, tokens; votes +1 / -0.5."""

    def reward_computer(self, config: RewardConfig | None = None) -> RewardComputer | None:
        """The reward computer these switches ask for (None when collecting only)."""
        if self.collect_only:
            return None
        return RewardComputer(
            config,
            tools=self.enable_tool_rewards,
            answers=self.enable_answer_quality_rewards,
            coordination=self.enable_coordination_rewards,
        )


def _text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping):
        return str(message.get("content", ""))
    if isinstance(message, list) and message and isinstance(message[-1], Mapping):
        return str(message[-1].get("content", ""))  # an OpenAI-style message list: the last turn
    return repr(message)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


class _ChatRecorder:
    """Accumulates one chat call (text, chunks) on its trace; every method swallows and logs its errors."""

    def __init__(self, trace: ActiveTrace, signature: str, message: str, reference: str | None) -> None:
        self.trace, self.signature, self.message, self.reference = trace, signature, message, reference
        self.start = time.time()
        self.text: list[str] = []
        self.chunks: list[Any] = []

    def observe(self, item: Any, *, chunk: bool) -> None:
        try:
            if chunk:
                self.chunks.append(_jsonable(item))
            if isinstance(item, str):
                self.text.append(item)
            elif isinstance(item, Mapping):
                kind = item.get("type")
                if kind in ("text", "content"):
                    self.text.append(str(item.get("text", item.get("content", ""))))
                elif kind == "reasoning":
                    self.trace.reasoning(str(item.get("text", "")))
                elif kind in ("tool", "tool_call"):
                    self._tool_call(item)
                elif kind is None:  # a whole message: content, reasoning, tool_calls
                    reasoning = item.get("reasoning") or item.get("reasoning_content")
                    if reasoning:
                        self.trace.reasoning(str(reasoning))
                    for call in item.get("tool_calls") or []:
                        self._tool_call(call)
                    if item.get("content"):
                        self.text.append(str(item["content"]))
            elif item is not None:
                self.text.append(str(item))
        except Exception:
            logger.exception("could not record a chat chunk; continuing without it")

    def _tool_call(self, call: Mapping[str, Any]) -> None:
        fn = call.get("function") if isinstance(call.get("function"), Mapping) else {}
        name = str(call.get("tool") or call.get("name") or fn.get("name") or "unknown")
        args = call.get("args", call.get("arguments", fn.get("arguments")))
        self.trace.tool(
            name,
            args=_jsonable(args),
            status=str(call.get("status", "success")),
            output=str(call.get("output", ""))[:MAX_OUTPUT_CHARS],
            reported=True,
        )

    def finish(self, status: str, error: BaseException | None = None) -> None:
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
            if response or self.chunks:
                self.trace.content(response, chunks=self.chunks, num_chunks=len(self.chunks))
            if error is not None:
                self.trace.metadata["error"] = f"{type(error).__name__}: {error}"
            self.trace.end(status=status, answer=response, reference=self.reference)
        except Exception:
            logger.exception("could not write the trace of a chat call")


class RLAgentMixin:
    """Records ``chat()`` calls, tool calls, content, reasoning and streamed chunks (see module docstring)."""

    rl_config: RLConfig = RLConfig()
    rl_collector: TraceCollector | None = None
    rl_signature: str | None = None
    _rl_trace: ActiveTrace | None = None

    def enable_rl_tracing(
        self,
        sink: SpanSink | TraceStore,
        agent_id: str | None = None,
        config: RLConfig | None = None,
        reward_config: RewardConfig | None = None,
    ) -> TraceCollector:
        """Record this agent's chats into ``sink`` (a :class:`TraceStore` or any span sink) under ``config``."""
        if isinstance(sink, TraceStore):
            sink = StoreSink(sink)
        self.rl_config = config or RLConfig(enable_rl=True)
        self.rl_collector = TraceCollector(
            sink,
            agent_id or type(self).__name__,
            reward_computer=self.rl_config.reward_computer(reward_config),
        )
        return self.rl_collector

    def rl_tool(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run tool ``fn(*args, **kwargs)`` and, inside a recorded chat, record it as a ``tool`` span.

        Status: ``failure`` when it raised (the exception propagates), ``empty`` when it returned None or an empty
        string/collection, else ``success``.
        """
        trace = self._rl_trace
        if trace is None:
            return fn(*args, **kwargs)
        start = time.time()
        call_args = _jsonable({"args": list(args), "kwargs": kwargs} if kwargs else list(args))
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._rl_safe(
                trace.tool, name, call_args, "failure", f"{type(exc).__name__}: {exc}", start_ts=start
            )
            raise
        empty = result is None or (hasattr(result, "__len__") and len(result) == 0)
        output = "" if result is None else str(result)[:MAX_OUTPUT_CHARS]
        self._rl_safe(trace.tool, name, call_args, "empty" if empty else "success", output, start_ts=start)
        return result

    @staticmethod
    def _rl_safe(
        method: Callable[..., Any], *args: Any, start_ts: float | None = None, **kwargs: Any
    ) -> None:
        try:
            method(*args, start_ts=start_ts, end_ts=time.time(), **kwargs) if start_ts else method(
                *args, **kwargs
            )
        except Exception:
            logger.exception(
                "could not record %s; continuing without it", getattr(method, "__name__", "a span")
            )

    def chat(self, message: Any, *args: Any, rl_reference: str | None = None, **kwargs: Any) -> Any:
        """The parent's ``chat``, recorded when ``rl_config.enable_rl`` is set. ``rl_reference``: an expected
        answer for the answer-quality reward (not passed to the parent)."""
        parent = super().chat  # type: ignore[misc]
        if not self.rl_config.enable_rl or self.rl_collector is None:
            return parent(message, *args, **kwargs)
        recorder = self._rl_start(message, rl_reference)
        if recorder is None:
            return parent(message, *args, **kwargs)
        previous, self._rl_trace = self._rl_trace, recorder.trace
        try:
            result = parent(message, *args, **kwargs)
        except BaseException as exc:
            self._rl_trace = previous
            recorder.finish("error", exc)
            raise
        self._rl_trace = previous
        if inspect.isgenerator(result):
            return self._rl_stream(result, recorder)
        if inspect.isasyncgen(result):
            return self._rl_astream(result, recorder)
        recorder.observe(result, chunk=False)
        recorder.finish("ok")
        return result

    def _rl_start(self, message: Any, reference: str | None) -> _ChatRecorder | None:
        try:
            text = _text(message)
            trace = self.rl_collector.start_trace(task=text, metadata={"agent": type(self).__name__})  # type: ignore[union-attr]
            return _ChatRecorder(trace, self.rl_signature or f"{type(self).__name__}.chat", text, reference)
        except Exception:
            logger.exception("trace recording disabled for this chat call: start_trace failed")
            return None

    def _rl_stream(self, stream: Iterator[Any], recorder: _ChatRecorder) -> Iterator[Any]:
        status, error = "ok", None
        try:
            while True:
                previous, self._rl_trace = self._rl_trace, recorder.trace
                try:
                    chunk = next(stream)
                except StopIteration:
                    break
                finally:
                    self._rl_trace = previous
                recorder.observe(chunk, chunk=True)
                yield chunk
        except GeneratorExit:
            status = "cancelled"
            stream.close()  # type: ignore[attr-defined]
            raise
        except BaseException as exc:
            status, error = "error", exc
            raise
        finally:
            recorder.finish(status, error)

    async def _rl_astream(self, stream: AsyncIterator[Any], recorder: _ChatRecorder) -> AsyncIterator[Any]:
        status, error = "ok", None
        try:
            while True:
                previous, self._rl_trace = self._rl_trace, recorder.trace
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    self._rl_trace = previous
                recorder.observe(chunk, chunk=True)
                yield chunk
        except GeneratorExit:
            status = "cancelled"
            await stream.aclose()  # type: ignore[attr-defined]
            raise
        except BaseException as exc:
            status, error = "error", exc
            raise
        finally:
            recorder.finish(status, error)


class RLOrchestratorMixin(RLAgentMixin):
    """An :class:`RLAgentMixin` that also records coordination events between the agents it orchestrates.

    Call these inside the orchestrator's ``chat()``; outside a recorded chat they do nothing.
    """

    def rl_answer(self, agent: str, text: str, **extra: Any) -> None:
        """Agent ``agent`` proposed answer ``text`` (``tokens=N`` overrides the token count)."""
        if self._rl_trace is not None:
            self._rl_safe(
                self._rl_trace.add,
                "coordination",
                ANSWER,
                agent=agent,
                text=text,
                seq=self._rl_seq(),
                **extra,
            )

    def rl_vote(self, voter: str, for_agent: str, reason: str = "") -> None:
        """Agent ``voter`` voted for the answer of ``for_agent``."""
        if self._rl_trace is not None:
            self._rl_safe(
                self._rl_trace.add,
                "coordination",
                VOTE,
                voter=voter,
                reason=reason,
                seq=self._rl_seq(),
                **{"for": for_agent},
            )

    def rl_restart(self, reason: str = "") -> None:
        """Coordination restarted (a new round): earlier answers and votes no longer count."""
        if self._rl_trace is not None:
            self._rl_safe(self._rl_trace.add, "coordination", RESTART, reason=reason, seq=self._rl_seq())

    def _rl_seq(self) -> int:
        """Order of a coordination event in its trace (stored spans are ordered by time, which can tie)."""
        return len(self._rl_trace.spans) if self._rl_trace is not None else 0
