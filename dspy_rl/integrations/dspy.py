"""Record a DSPy program's module, LM and tool calls as dspy-rl traces, through DSPy's callback API.

``dspy.configure(callbacks=[DSPyTraceRecorder(collector)])`` (or ``record_dspy(store_path)``) and every top-level
module call becomes one trace:

* each module call a ``reasoning`` span (``module.<Class>``: inputs, outputs or the exception);
* each LM call a ``prompt`` span named after the predictor that made it (``react``, ``extract.predict``, ... as in
  ``program.named_predictors()``), with the messages, the rendered prompt, the response text, LM kwargs, and the
  error when the call or its parsing failed;
* each tool call a ``tool`` span (``success``, ``empty`` result, or ``failure`` when the tool raised), followed by a
  ``reward`` span crediting the LM call that chose the tool (+1 / -1 / -0.5 of the shared reward scheme), so the
  GRPO miner can group the decisions at the ``signature`` level;
* when the top-level call ends, a ``content`` span with the answer and the trace's end (status ``ok`` or
  ``error``); the collector's reward computer adds tool and answer-quality rewards.

:func:`load_policy` reads the ``.dspy_policy.yaml`` written by ``dspy-rl grpo apply-policy``; :func:`apply_policy`
orders and filters a ``dspy.ReAct``'s tools with it.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dspy.utils.callback import BaseCallback

from dspy_rl.traces.collector import ActiveTrace, StoreSink, TraceCollector
from dspy_rl.traces.rewards import RewardComputer
from dspy_rl.traces.spans import Span
from dspy_rl.traces.store import TraceStore

logger = logging.getLogger(__name__)


def _jsonable(value: Any, limit: int = 20000) -> Any:
    """A JSON-safe, size-capped copy of ``value`` (DSPy objects become their repr or dict)."""
    try:
        text = json.dumps(value, default=lambda o: getattr(o, "toDict", lambda: repr(o))())
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) > limit:
        return text[:limit] + "...[truncated]"
    return json.loads(text)


def _render(messages: list[dict[str, Any]] | None, prompt: str | None) -> str:
    if messages:
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages)
    return prompt or ""


def _output_text(outputs: Any) -> str:
    if isinstance(outputs, list) and outputs:
        first = outputs[0]
        if isinstance(first, dict):
            return str(first.get("text") or "")
        return str(first)
    return "" if outputs is None else str(outputs)


def _error(exc: BaseException | None) -> str | None:
    return None if exc is None else f"{type(exc).__name__}: {str(exc)[:2000]}"


@dataclass
class _State:
    """Per-thread recording state of the current top-level call."""

    trace: ActiveTrace | None = None
    root_call: str | None = None
    names: dict[int, str] = field(default_factory=dict)  # id(predictor) -> its name in the program
    modules: list[tuple[str, Any]] = field(default_factory=list)  # (call_id, instance) stack
    open: dict[str, tuple[Any, float, dict[str, Any]]] = field(
        default_factory=dict
    )  # call_id -> (instance, t0, inputs)
    last_prompt: Span | None = None


class DSPyTraceRecorder(BaseCallback):
    """A DSPy callback that records each top-level module call as one trace (see module docstring)."""

    def __init__(
        self,
        collector: TraceCollector,
        *,
        answer_field: str = "answer",
        rewards: RewardComputer | None = None,
    ) -> None:
        self.collector = collector
        self.answer_field = answer_field
        self.rewards = rewards or collector.reward_computer or RewardComputer()
        self._local = threading.local()

    @property
    def _s(self) -> _State:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _State()
        return state

    # ----- modules -----
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        import time

        s = self._s
        if s.trace is None:
            kwargs = inputs.get("kwargs") if isinstance(inputs.get("kwargs"), dict) else inputs
            task = kwargs.get("question") or next((v for v in kwargs.values() if isinstance(v, str)), None)
            if task is None and inputs.get("args"):
                task = next((v for v in inputs["args"] if isinstance(v, str)), None)
            s.trace = self.collector.start_trace(
                str(task) if task is not None else json.dumps(_jsonable(inputs)),
                metadata={"program": type(instance).__name__},
            )
            s.root_call = call_id
            try:
                s.names = {id(p): name for name, p in instance.named_predictors()}
            except Exception:
                s.names = {}
        s.modules.append((call_id, instance))
        s.open[call_id] = (instance, time.time(), inputs)

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        import time

        s = self._s
        if s.trace is None or call_id not in s.open:
            return
        instance, t0, inputs = s.open.pop(call_id)
        if s.modules and s.modules[-1][0] == call_id:
            s.modules.pop()
        s.trace.add(
            "reasoning",
            f"module.{type(instance).__name__}",
            start_ts=t0,
            end_ts=time.time(),
            predictor=s.names.get(id(instance)),
            inputs=_jsonable(inputs),
            outputs=_jsonable(outputs),
            error=_error(exception),
        )
        if call_id != s.root_call:
            return
        trace, self._local.state = s.trace, None
        answer = None
        if outputs is not None:
            answer = getattr(outputs, self.answer_field, None)
            if answer is not None:
                span = trace.content(str(answer))
                if self.collector.reward_computer is None:  # else the collector scores it at trace end
                    q = self.rewards.answer_quality(str(answer), query=trace.task or "")
                    trace.reward(
                        q.total,
                        target=span,
                        source="answer_quality",
                        components={"structure": q.structure, "depth": q.depth, "similarity": q.similarity},
                    )
        if exception is not None:
            trace.metadata["error"] = _error(exception)
        trace.end(
            status="error" if exception is not None else "ok", answer=None if answer is None else str(answer)
        )

    # ----- LM calls -----
    def _predictor_name(self) -> str:
        s = self._s
        for _, inst in reversed(s.modules):
            name = s.names.get(id(inst))
            if name:
                return name
        return type(s.modules[-1][1]).__name__ if s.modules else "lm"

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        import time

        s = self._s
        if s.trace is not None:
            s.open[call_id] = (instance, time.time(), inputs)

    def on_lm_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        import time

        s = self._s
        if s.trace is None or call_id not in s.open:
            return
        instance, t0, inputs = s.open.pop(call_id)
        messages = inputs.get("messages")
        kwargs = {k: v for k, v in (inputs.get("kwargs") or {}).items() if k not in ("messages",)}
        name = self._predictor_name()
        s.last_prompt = s.trace.add(
            "prompt",
            name,
            start_ts=t0,
            end_ts=time.time(),
            prompt=_render(messages, inputs.get("prompt")),
            response=_output_text(outputs),
            messages=_jsonable(messages),
            context={"predictor": name, "model": getattr(instance, "model", None)},
            model=getattr(instance, "model", None),
            lm_kwargs=_jsonable(kwargs),
            outputs=_jsonable(outputs),
            error=_error(exception),
        )

    # ----- adapter parsing (a response the program could not parse is recorded on its LM call) -----
    def on_adapter_parse_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        s = self._s
        if exception is not None and s.last_prompt is not None and s.trace is not None:
            s.trace.add(
                "reasoning",
                "adapter.parse_error",
                parent_id=s.last_prompt.span_id,
                target=s.last_prompt.span_id,
                error=_error(exception),
            )

    # ----- tools -----
    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        import time

        s = self._s
        if s.trace is not None:
            s.open[call_id] = (instance, time.time(), inputs)

    def on_tool_end(self, call_id: str, outputs: Any | None, exception: BaseException | None = None) -> None:
        import time

        s = self._s
        if s.trace is None or call_id not in s.open:
            return
        instance, t0, inputs = s.open.pop(call_id)
        name = str(getattr(instance, "name", type(instance).__name__))
        args = inputs.get("kwargs", inputs)
        if exception is not None:
            status, output = "failure", _error(exception) or ""
        else:
            output = "" if outputs is None else str(outputs)
            status = "empty" if not output.strip() else "success"
        parent = s.last_prompt.span_id if s.last_prompt is not None else None
        s.trace.tool(
            name,
            _jsonable(args),
            status=status,
            output=output[:20000],
            parent_id=parent,
            start_ts=t0,
            end_ts=time.time(),
        )
        if parent is not None and name != "finish":
            # credit the LM call that chose this tool with the tool's outcome
            s.trace.reward(
                self.rewards.tool_reward(status),
                target=parent,
                source="tool_choice",
                components={"tool": name, "status": status},
            )


def record_dspy(store_path: str | Path, agent_id: str = "dspy", *, rewards: bool = True) -> DSPyTraceRecorder:
    """A recorder writing into the SQLite trace store at ``store_path``.

    Rewards: each tool outcome credits the LM call that chose the tool, and the final answer gets its quality
    score (the collector has no reward computer of its own, so no outcome is counted twice in a trace's total).
    """
    store = TraceStore(store_path)
    collector = TraceCollector(StoreSink(store), agent_id, flush_every=64)
    return DSPyTraceRecorder(collector, rewards=RewardComputer() if rewards else None)


def rank_react_tools(
    signature: Any,
    tools: list[Any],
    policy: Any,
    *,
    history: list[dict[str, str]] | None = None,
    keep_top: int | None = None,
    max_iters: int = 10,
) -> Any:
    """A ``dspy.ReAct`` whose tools are ordered (best first) and, with ``keep_top``, filtered by the served policy.

    ``policy``: a :class:`dspy_rl.serving.policy_client.PolicyClient`; ``history``: the tools called so far and their
    results. Tools the policy does not know keep their order after the ranked ones and are never filtered out.
    The tool list is part of ReAct's instructions, so the order is what the LM reads.
    """
    import dspy

    def tool_name(t: Any) -> str:
        return str(getattr(t, "name", None) or getattr(t, "__name__", repr(t)))

    known = set(policy.info()["tools"])
    mine = [tool_name(t) for t in tools if tool_name(t) in known]
    ranked_names: list[str] = []
    if mine:
        decision = policy.decide({"history": history or [], "tools": mine})
        ranked_names = [r["tool"] for r in decision["tools"]]
        if keep_top is not None:
            ranked_names = ranked_names[:keep_top]
    by_name = {tool_name(t): t for t in tools}
    ordered = [by_name[n] for n in ranked_names] + [t for t in tools if tool_name(t) not in known]
    return dspy.ReAct(signature, tools=ordered, max_iters=max_iters)


@dataclass
class ToolPolicy:
    """The ``.dspy_policy.yaml`` of ``dspy-rl grpo apply-policy``: preferred tools first, denied tools by trigger."""

    prefer: list[str]
    deny: list[tuple[str, Any]]  # (tool, compiled trigger regex)
    path: str

    def filter(self, tools: list[Any], request: str) -> list[Any]:
        """``tools`` with the preferred ones first (in policy order) and the ones denied for ``request`` removed."""

        def name(t: Any) -> str:
            return str(getattr(t, "name", None) or getattr(t, "__name__", repr(t)))

        denied = {tool for tool, trigger in self.deny if trigger.search(request)}
        kept = [t for t in tools if name(t) not in denied]
        rank = {n: i for i, n in enumerate(self.prefer)}
        return sorted(kept, key=lambda t: rank.get(name(t), len(rank)))  # stable: others keep their order


def load_policy_file(workspace: str | Path) -> ToolPolicy | None:
    """The policy in ``<workspace>/.dspy_policy.yaml``, or None when there is none (ValueError if malformed)."""
    import re

    import yaml

    path = Path(workspace) / ".dspy_policy.yaml"
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        prefer = [str(t["name"]) for t in (doc.get("prefer") or {}).get("tools", [])]
        deny = [(str(d["tool"]), re.compile(str(d["trigger"]))) for d in doc.get("deny") or []]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, re.error) as exc:
        raise ValueError(f"{path}: not a policy written by `dspy-rl grpo apply-policy` ({exc})") from exc
    return ToolPolicy(prefer, deny, str(path))


def policy_react(
    signature: Any, tools: list[Any], workspace: str | Path, request: str, max_iters: int = 10
) -> Any:
    """A ``dspy.ReAct`` over ``tools`` as the workspace's policy file orders and filters them for ``request``."""
    import dspy

    policy = load_policy_file(workspace)
    chosen = tools if policy is None else policy.filter(tools, request)
    return dspy.ReAct(signature, tools=chosen, max_iters=max_iters)
