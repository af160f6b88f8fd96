"""What every judge takes and returns.

A judge scores a batch of :class:`JudgeItem` (query, response, optional reference and context) and returns
one :class:`JudgeScore` per item: a score in [0, 1] (higher is better), a short human-readable explanation,
and named components (e.g. the rubric's structure/depth/similarity parts). Judges are plain Python objects
with a synchronous ``score_batch``; the Serve layer (:mod:`dspy_rl.judges.app`) runs them in replicas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class InvalidItem(ValueError):
    """A judge item is missing a field, has the wrong type, or is too long."""


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
        context = data.get("context")
        context = {} if context is None else context
        if not isinstance(context, Mapping):
            raise InvalidItem(f"field 'context' must be an object, got {type(context).__name__}")
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
