"""What every judge takes and returns.

A judge scores a batch of :class:`JudgeItem` (query, response, optional reference and context) and returns
one :class:`JudgeScore` per item: a score in [0, 1] (higher is better), a short human-readable explanation,
and named components (e.g. the rubric's structure/depth/similarity parts). Judges are plain Python objects
with a synchronous ``score_batch``; the Serve layer (:mod:`dspy_rl.judges.app`) runs them in replicas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class InvalidItem(ValueError):
    """A judge item is missing a field, has the wrong type, or is too long."""


#: Outcomes ``context.tool_results`` may list (the rubric judge's tool reward scores each).
TOOL_RESULTS = ("success", "error", "empty")
#: Most entries of ``context.tool_results``.
MAX_TOOL_RESULTS = 4096
#: ``context.coordination`` fields: (type check, range check, what is allowed).
_COORDINATION: dict[str, tuple[Any, Any, str]] = {
    "rounds": (int, lambda v: 1 <= v <= 1_000_000, "an integer in [1, 1000000]"),
    "quality": ((int, float), lambda v: math.isfinite(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "consensus": (bool, lambda v: True, "true or false"),
    "tokens": (int, lambda v: 0 <= v <= 10**12, "an integer in [0, 10^12]"),
}


def _check_context(context: Any) -> dict[str, Any]:
    """The validated ``context`` of an item: only ``tool_results`` (a list of :data:`TOOL_RESULTS`) and
    ``coordination`` (``{rounds, quality, consensus, tokens}``), each checked for type, range and size here, at
    the service's edge, so that no judge ever fails on a client's malformed context."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise InvalidItem(f"field 'context' must be an object, got {type(context).__name__}")
    unknown = set(context) - {"tool_results", "coordination"}
    if unknown:
        shown = sorted(str(k)[:40] for k in unknown)[:5]
        raise InvalidItem(f"unknown context field(s) {shown}; allowed: tool_results, coordination")
    if "tool_results" in context:
        results = context["tool_results"]
        if not isinstance(results, list):
            raise InvalidItem(
                f"context.tool_results must be a list of {'/'.join(TOOL_RESULTS)}, got {type(results).__name__}"
            )
        if len(results) > MAX_TOOL_RESULTS:
            raise InvalidItem(
                f"context.tool_results has {len(results)} entries; the limit is {MAX_TOOL_RESULTS}"
            )
        for i, r in enumerate(results):
            if not isinstance(r, str) or r not in TOOL_RESULTS:
                shown = repr(r)[:40] if isinstance(r, str) else type(r).__name__
                raise InvalidItem(
                    f"context.tool_results[{i}] is {shown}; expected one of {', '.join(TOOL_RESULTS)}"
                )
    if "coordination" in context:
        coord = context["coordination"]
        if not isinstance(coord, Mapping):
            raise InvalidItem(
                f"context.coordination must be an object with rounds/quality/consensus/tokens, got "
                f"{type(coord).__name__}"
            )
        extra = set(coord) - set(_COORDINATION)
        if extra:
            shown = sorted(str(k)[:40] for k in extra)[:5]
            raise InvalidItem(
                f"unknown context.coordination field(s) {shown}; allowed: {', '.join(_COORDINATION)}"
            )
        for key, value in coord.items():
            kind, in_range, allowed = _COORDINATION[key]
            type_ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if not type_ok or not in_range(value):
                shown = repr(value)[:40] if isinstance(value, int | float | bool) else type(value).__name__
                raise InvalidItem(f"context.coordination.{key} is {shown}; expected {allowed}")
    return dict(context)


@dataclass(frozen=True)
class JudgeItem:
    """One thing to judge: the agent's ``response`` to ``query``, optionally against a ``reference``."""

    query: str
    response: str
    reference: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], max_chars: int | None = None) -> JudgeItem:
        """Validate a request body item; raises :class:`InvalidItem` saying which field is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidItem(
                f"an item must be an object with query/response fields, got {type(data).__name__}"
            )
        for key in ("query", "response"):
            if key not in data:
                raise InvalidItem(f"missing field {key!r}: every item needs 'query' and 'response' strings")
        for key in ("query", "response", "reference"):
            value = data.get(key)
            if value is None and key == "reference":
                continue
            if not isinstance(value, str):
                raise InvalidItem(f"field {key!r} must be a string, got {type(value).__name__}")
            if max_chars is not None and len(value) > max_chars:
                raise InvalidItem(
                    f"field {key!r} has {len(value)} characters; the limit is {max_chars} (serve.max_text_chars)"
                )
        context = _check_context(data.get("context"))
        unknown = set(data) - {"query", "response", "reference", "context"}
        if unknown:
            raise InvalidItem(
                f"unknown field(s) {sorted(unknown)}; allowed: query, response, reference, context"
            )
        return cls(data["query"], data["response"], data.get("reference"), dict(context))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form accepted by :meth:`from_dict` and ``POST /judge``."""
        out: dict[str, Any] = {"query": self.query, "response": self.response}
        if self.reference is not None:
            out["reference"] = self.reference
        if self.context:
            out["context"] = dict(self.context)
        return out


@dataclass
class JudgeScore:
    """One judge's verdict on one item."""

    score: float
    explanation: str = ""
    components: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"judge score {self.score!r} is outside [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "explanation": self.explanation, "components": dict(self.components)}


@runtime_checkable
class Judge(Protocol):
    """Anything with a ``name`` and ``score_batch(items) -> scores`` (same length, same order)."""

    name: str

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]: ...


def clip01(x: float) -> float:
    """Clamp to [0, 1] (NaN becomes 0)."""
    if x != x:  # NaN
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else float(x)
