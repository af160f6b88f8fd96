"""What the recording proxy writes for one OpenAI call: a ``prompt`` span, plus ``tool`` spans for tool results.

* The trace id comes from a request header, else one trace per conversation: a hash of the conversation's opening
  turns (system messages and the first user message), which every later turn of the same conversation repeats.
* The ``prompt`` span holds the messages, the rendered prompt text (what the GRPO miner groups on), the response
  text, tool calls, finish reason, token ids and log-probs when the upstream returned them, usage, latency, the
  HTTP status and the upstream's error when there was one.
* Tool results come back to the model as ``role: tool`` messages in the next request; each becomes a ``tool`` span
  (status ``success``, ``empty`` for blank output, ``failure`` for output that reads as an error) whose span id
  is derived from the trace and the tool call id, so the copies repeated by later turns are stored once.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from dspy_rl.traces.spans import Span

_ERRORISH = ("error", "traceback", "exception", "failed")


def _hash(obj: Any, n: int = 32) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def conversation_trace_id(body: dict[str, Any]) -> str:
    """One id per conversation: the hash of its system messages and first user message (or the prompt)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        opening = []
        for m in messages:
            if not isinstance(m, dict):
                continue
            opening.append({"role": m.get("role"), "content": _text(m.get("content"))})
            if m.get("role") == "user":
                break
        return _hash({"model": body.get("model"), "opening": opening})
    return _hash({"model": body.get("model"), "prompt": body.get("prompt")})


def render_prompt(body: dict[str, Any]) -> str:
    """The request as one text (``role: content`` lines for chat), used as the span's prompt."""
    messages = body.get("messages")
    if isinstance(messages, list):
        return "\n".join(
            f"{m.get('role')}: {_text(m.get('content'))}" for m in messages if isinstance(m, dict)
        )
    prompt = body.get("prompt")
    return prompt if isinstance(prompt, str) else json.dumps(prompt)


@dataclass
class CallResult:
    """The upstream's answer to one call, collected from a JSON body or an SSE stream."""

    status: int
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    usage: dict[str, Any] | None = None
    error: Any = None
    response_id: str | None = None

    @classmethod
    def from_body(cls, status: int, body: Any) -> CallResult:
        if status >= 400 or not isinstance(body, dict) or "choices" not in body:
            return cls(status=status, error=body)
        out = cls(status=status, usage=body.get("usage"), response_id=body.get("id"))
        choices = body.get("choices") or [{}]
        first = choices[0] if isinstance(choices[0], dict) else {}
        msg = first.get("message") or {}
        out.text = _text(msg.get("content")) if msg else str(first.get("text", ""))
        out.tool_calls = list(msg.get("tool_calls") or [])
        out.finish_reason = first.get("finish_reason")
        out._take_logprobs(first)
        return out

    def _take_logprobs(self, choice: dict[str, Any]) -> None:
        lp = choice.get("logprobs")
        ids = choice.get("token_ids")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):  # chat
            entries = lp["content"]
            self.logprobs = (self.logprobs or []) + [float(e.get("logprob", 0.0)) for e in entries]
            if ids is None and entries and all("token_id" in e for e in entries):
                ids = [e["token_id"] for e in entries]
        elif isinstance(lp, dict) and isinstance(lp.get("token_logprobs"), list):  # completions
            self.logprobs = (self.logprobs or []) + [float(x) for x in lp["token_logprobs"] if x is not None]
            ids = ids if ids is not None else lp.get("token_ids")
        if isinstance(ids, list):
            self.token_ids = (self.token_ids or []) + [int(i) for i in ids]

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        """Fold one streamed ``chat.completion.chunk`` / completion chunk into the result."""
        self.response_id = self.response_id or chunk.get("id")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self.text += _text(delta.get("content"))
                for tc in delta.get("tool_calls") or []:
                    idx = tc.get("index", len(self.tool_calls))
                    while len(self.tool_calls) <= idx:
                        self.tool_calls.append(
                            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
                        )
                    slot = self.tool_calls[idx]
                    slot["id"] = tc.get("id") or slot["id"]
                    fn = tc.get("function") or {}
                    slot["function"]["name"] += fn.get("name") or ""
                    slot["function"]["arguments"] += fn.get("arguments") or ""
            elif "text" in choice:
                self.text += str(choice.get("text") or "")
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
            self._take_logprobs(choice)


def _tool_status(output: str) -> str:
    stripped = output.strip()
    if not stripped:
        return "empty"
    head = stripped[:80].lower()
    return "failure" if head.startswith(_ERRORISH) else "success"


def call_spans(
    *,
    trace_id: str,
    agent_id: str,
    endpoint: str,
    body: dict[str, Any],
    result: CallResult,
    started: float,
    latency_ms: float,
    stream: bool,
    upstream: str,
) -> list[Span]:
    """The spans for one proxied call (see module docstring)."""
    messages = body.get("messages") if isinstance(body.get("messages"), list) else None
    spans = _tool_spans(messages, trace_id, agent_id, started) if messages else []
    tools = body.get("tools")
    tool_names = (
        sorted(str((t.get("function") or {}).get("name")) for t in tools if isinstance(t, dict))
        if isinstance(tools, list)
        else []
    )
    model = str(body.get("model", ""))
    attrs: dict[str, Any] = {
        "prompt": render_prompt(body),
        "response": result.text,
        "context": {"model": model, "endpoint": endpoint, "tools": tool_names},
        "endpoint": endpoint,
        "model": model,
        "upstream": upstream,
        "stream": stream,
        "status_code": result.status,
        "latency_ms": round(latency_ms, 3),
        "finish_reason": result.finish_reason,
        "tool_calls": result.tool_calls,
        "usage": result.usage,
        "response_id": result.response_id,
    }
    if messages is not None:
        attrs["messages"] = messages
    if result.token_ids is not None:
        attrs["token_ids"] = result.token_ids
    if result.logprobs is not None:
        attrs["logprobs"] = result.logprobs
    if result.error is not None:
        attrs["error"] = result.error
    spans.append(
        Span(
            kind="prompt",
            trace_id=trace_id,
            agent_id=agent_id,
            name=f"{endpoint}:{model}",
            start_ts=started,
            end_ts=started + latency_ms / 1000.0,
            attributes=attrs,
        )
    )
    return spans


def _tool_spans(messages: list[Any], trace_id: str, agent_id: str, started: float) -> list[Span]:
    """One ``tool`` span per ``role: tool`` message, named and given arguments by the call it answers."""
    spans: list[Span] = []
    calls: dict[str, dict[str, Any]] = {}
    for m in messages:
        if not isinstance(m, dict):
            continue
        for tc in m.get("tool_calls") or []:
            if isinstance(tc, dict) and tc.get("id"):
                calls[tc["id"]] = tc.get("function") or {}
        if m.get("role") == "tool":
            call_id = str(m.get("tool_call_id") or "")
            fn = calls.get(call_id, {})
            output = _text(m.get("content"))
            args: Any = fn.get("arguments")
            try:
                args = json.loads(args) if isinstance(args, str) else args
            except ValueError:
                pass
            name = fn.get("name") or m.get("name") or "tool"
            spans.append(
                Span(
                    kind="tool",
                    trace_id=trace_id,
                    agent_id=agent_id,
                    name=str(name),
                    span_id=_hash({"trace": trace_id, "tool_call": call_id or _hash(m)}),
                    start_ts=started,
                    attributes={
                        "tool": str(name),
                        "args": args,
                        "status": _tool_status(output),
                        "output": output,
                        "tool_call_id": call_id,
                        "source": "proxy",
                    },
                )
            )
    return spans


def now() -> float:
    return time.time()
