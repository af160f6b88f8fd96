"""Hyperparameter search spaces, mapped to and from the unit cube the surrogate models work in.

Each parameter maps its value to ``u in [0, 1]`` (``to_unit``) and back (``from_unit``). The searchers only ever
see unit vectors; integer-valued spaces round in ``from_unit``, and the searcher maps the rounded value back with
``to_unit`` so the surrogate is fitted on the point that actually ran.

Spaces (the ``space`` key of a parameter spec in ``conf/sweep/*.yaml``):

=========  ==========================================  ==============================
``space``  value                                       unit mapping
=========  ==========================================  ==============================
linear     float in [min, max]                         affine
log        float in [min, max], min > 0                affine in log(value)
pow2       int power of two in [min, max]              affine in log2(value), rounded
logit      float in [min, max] inside (0, 1)           affine in log(1 - value), e.g. gamma
int        int in [min, max]                           affine, rounded
choice     one of ``values``                           k equal bins of [0, 1]
=========  ==========================================  ==============================

``linear`` and ``log`` take ``type: int`` for an integer setting sampled on that scale (``total_env_steps: {space:
log, min: 8192, max: 131072, type: int}``): values are rounded to integers (and the bounds must be integers).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPACE_KINDS = ("linear", "log", "pow2", "logit", "int", "choice")


class SpaceError(ValueError):
    """A search-space specification is invalid (the message names the parameter and the fix)."""


def _num(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"parameter {name!r}: {key}={value!r} must be a number")
    if not math.isfinite(value):
        raise SpaceError(f"parameter {name!r}: {key}={value!r} must be finite")
    return float(value)


@dataclass
class Param(ABC):
    """One searched hyperparameter. ``name`` is the config key (dotted keys are Hydra overrides)."""

    name: str

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """Map a value of this space to [0, 1]."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """Map ``u`` in [0, 1] (clipped) to a value of this space (rounded for integer spaces)."""

    def snap_unit(self, u: np.ndarray) -> np.ndarray:
        """Vectorized ``to_unit(from_unit(u))``: clip to [0, 1], and round where the space is discrete."""
        return np.clip(u, 0.0, 1.0)

    @abstractmethod
    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a legal value of this space (type and bounds)."""

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """The YAML/dict spec this parameter was built from (round-trips through :func:`make_param`)."""


@dataclass
class _Bounded(Param):
    min: float = 0.0
    max: float = 1.0
    integer: bool = False
    """``type: int``: round values to integers (linear and log spaces)."""

    def _check(self) -> None:
        self.min = _num(self.name, "min", self.min)
        self.max = _num(self.name, "max", self.max)
        if not self.min < self.max:
            raise SpaceError(f"parameter {self.name!r}: need min < max, got min={self.min} max={self.max}")
        if self.integer and (self.min != int(self.min) or self.max != int(self.max)):
            raise SpaceError(
                f"parameter {self.name!r}: type: int needs integer bounds, got [{self.min}, {self.max}]"
            )
        if self.integer:
            self.min, self.max = int(self.min), int(self.max)

    # forward and inverse transforms of the bounded value to the line the unit cube is affine in
    def _fwd(self, v: float) -> float:
        return v

    def _inv(self, t: float) -> float:
        return t

    def to_unit(self, value: Any) -> float:
        lo, hi = self._fwd(self.min), self._fwd(self.max)
        return min(max((self._fwd(float(value)) - lo) / (hi - lo), 0.0), 1.0)

    def from_unit(self, u: float) -> Any:
        lo, hi = self._fwd(self.min), self._fwd(self.max)
        v = self._inv(lo + min(max(float(u), 0.0), 1.0) * (hi - lo))
        v = min(max(v, self.min), self.max)
        return int(round(v)) if self.integer else v

    def snap_unit(self, u: np.ndarray) -> np.ndarray:
        if not self.integer:
            return np.clip(u, 0.0, 1.0)
        flat = np.asarray(u, dtype=float).reshape(-1)
        return np.array([self.to_unit(self.from_unit(x)) for x in flat]).reshape(np.shape(u))

    def contains(self, value: Any) -> bool:
        if self.integer and not isinstance(value, (int, np.integer)):
            return False
        return (
            isinstance(value, (int, float, np.integer))
            and not isinstance(value, bool)
            and self.min - 1e-12 * abs(self.min) <= value <= self.max + 1e-12 * abs(self.max)
        )

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"space": self.kind, "min": self.min, "max": self.max}
        return spec | {"type": "int"} if self.integer else spec

    kind = "linear"


@dataclass
class Linear(_Bounded):
    """Float, uniform in [min, max]."""

    kind = "linear"

    def __post_init__(self) -> None:
        self._check()


@dataclass
class Log(_Bounded):
    """Float, log-uniform in [min, max] (learning rates, coefficients spanning decades)."""

    kind = "log"

    def __post_init__(self) -> None:
        self._check()
        if self.min <= 0:
            raise SpaceError(f"parameter {self.name!r}: log space needs min > 0, got {self.min}")

    def _fwd(self, v: float) -> float:
        return math.log(max(v, 1e-300))

    def _inv(self, t: float) -> float:
        return math.exp(t)


@dataclass
class Logit(_Bounded):
    """Float in (0, 1) whose distance to 1 spans decades (discount factors, GAE lambda): log(1 - v) is uniform."""

    kind = "logit"

    def __post_init__(self) -> None:
        self._check()
        if not (0.0 < self.min and self.max < 1.0):
            raise SpaceError(
                f"parameter {self.name!r}: logit space needs 0 < min < max < 1, got [{self.min}, {self.max}]"
            )

    def _fwd(self, v: float) -> float:
        # Decreasing in v, so the bounds swap sides; to_unit/from_unit stay consistent because both use _fwd.
        return math.log(max(1.0 - v, 1e-300))

    def _inv(self, t: float) -> float:
        return 1.0 - math.exp(t)


@dataclass
class Int(_Bounded):
    """Integer, uniform in [min, max] (inclusive)."""

    kind = "int"

    def __post_init__(self) -> None:
        self._check()
        if self.min != int(self.min) or self.max != int(self.max):
            raise SpaceError(
                f"parameter {self.name!r}: int space needs integer bounds, got [{self.min}, {self.max}]"
            )
        self.min, self.max = int(self.min), int(self.max)

    def to_unit(self, value: Any) -> float:
        return float(np.clip((float(value) - self.min) / (self.max - self.min), 0.0, 1.0))

    def from_unit(self, u: float) -> int:
        return int(round(self.min + min(max(float(u), 0.0), 1.0) * (self.max - self.min)))

    def snap_unit(self, u: np.ndarray) -> np.ndarray:
        k = self.max - self.min
        return np.round(np.clip(u, 0.0, 1.0) * k) / k

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and self.min <= value <= self.max
        )


@dataclass
class Pow2(_Bounded):
    """Integer power of two in [min, max] (batch sizes, widths): log2 is uniform, then rounded."""

    kind = "pow2"

    def __post_init__(self) -> None:
        self._check()
        for key, v in (("min", self.min), ("max", self.max)):
            if v < 1 or 2 ** round(math.log2(v)) != v:
                raise SpaceError(
                    f"parameter {self.name!r}: pow2 space needs {key} a power of two >= 1, got {v}"
                )
        self.min, self.max = int(self.min), int(self.max)

    def _fwd(self, v: float) -> float:
        return math.log2(max(v, 1e-300))

    def _inv(self, t: float) -> float:
        return 2.0**t

    def from_unit(self, u: float) -> int:
        lo, hi = math.log2(self.min), math.log2(self.max)
        return int(2 ** round(lo + min(max(float(u), 0.0), 1.0) * (hi - lo)))

    def snap_unit(self, u: np.ndarray) -> np.ndarray:
        lo, hi = round(math.log2(self.min)), round(math.log2(self.max))
        # round() of lo + u * (hi - lo) with integer lo equals lo + round(u * (hi - lo)) (both round half to even)
        return np.round(np.clip(u, 0.0, 1.0) * (hi - lo)) / (hi - lo)

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and self.min <= value <= self.max
            and value & (value - 1) == 0
        )


@dataclass
class Choice(Param):
    """One of a list of values (strings, numbers, booleans): bin ``i`` of ``k`` equal bins of [0, 1]."""

    values: list[Any] = field(default_factory=list)
    kind = "choice"

    def __post_init__(self) -> None:
        if not isinstance(self.values, (list, tuple)) or len(self.values) < 1:
            raise SpaceError(f"parameter {self.name!r}: choice space needs a non-empty list `values`")
        self.values = list(self.values)
        if len({repr(v) for v in self.values}) != len(self.values):
            raise SpaceError(f"parameter {self.name!r}: choice values must be distinct, got {self.values}")

    def _index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            if type(v) is type(value) and v == value:
                return i
        for i, v in enumerate(self.values):  # 3 vs 3.0 from a YAML round trip
            if v == value:
                return i
        raise SpaceError(f"parameter {self.name!r}: {value!r} is not one of {self.values}")

    def to_unit(self, value: Any) -> float:
        return (self._index(value) + 0.5) / len(self.values)

    def from_unit(self, u: float) -> Any:
        k = len(self.values)
        return self.values[min(int(min(max(float(u), 0.0), 1.0) * k), k - 1)]

    def snap_unit(self, u: np.ndarray) -> np.ndarray:
        k = len(self.values)
        return (np.minimum(np.floor(np.clip(u, 0.0, 1.0) * k), k - 1) + 0.5) / k

    def contains(self, value: Any) -> bool:
        try:
            self._index(value)
        except SpaceError:
            return False
        return True

    def spec(self) -> dict[str, Any]:
        return {"space": "choice", "values": list(self.values)}


_KINDS: dict[str, type[Param]] = {
    "linear": Linear,
    "log": Log,
    "pow2": Pow2,
    "logit": Logit,
    "int": Int,
    "choice": Choice,
}


def make_param(name: str, spec: Mapping[str, Any]) -> Param:
    """Build one parameter from ``{"space": kind, "min": .., "max": ..}`` or ``{"space": "choice", "values": [..]}``."""
    if not isinstance(spec, Mapping):
        raise SpaceError(
            f"parameter {name!r}: spec must be a mapping like {{space: log, min: 1e-4, max: 1e-2}}"
        )
    kind = spec.get("space")
    if kind not in _KINDS:
        raise SpaceError(f"parameter {name!r}: space={kind!r}; choose one of {', '.join(SPACE_KINDS)}")
    allowed = {"space", "values"} if kind == "choice" else {"space", "min", "max"}
    if kind in ("linear", "log"):
        allowed.add("type")
    unknown = set(spec) - allowed
    if unknown:
        raise SpaceError(
            f"parameter {name!r}: unknown keys {sorted(unknown)} for space {kind}; allowed {sorted(allowed)}"
        )
    if kind == "choice":
        return Choice(name=name, values=list(spec.get("values") or []))
    if "min" not in spec or "max" not in spec:
        raise SpaceError(f"parameter {name!r}: space {kind} needs both `min` and `max`")
    if spec.get("type", "float") not in ("float", "int"):
        raise SpaceError(f"parameter {name!r}: type={spec['type']!r}; use `type: int` or `type: float`")
    if spec.get("type") == "int":
        return _KINDS[kind](name=name, min=spec["min"], max=spec["max"], integer=True)
    return _KINDS[kind](name=name, min=spec["min"], max=spec["max"])


class SearchSpace:
    """An ordered set of parameters; converts configs to unit vectors and back."""

    def __init__(self, params: Sequence[Param]):
        if not params:
            raise SpaceError("the search space is empty: give at least one parameter under `parameters`")
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise SpaceError(f"duplicate parameter names in {names}")
        self.params: list[Param] = list(params)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Mapping[str, Any]]) -> SearchSpace:
        """``{"algo.lr": {"space": "log", "min": 1e-4, "max": 1e-2}, ...}`` -> SearchSpace."""
        if not isinstance(spec, Mapping):
            raise SpaceError("`parameters` must be a mapping of name -> {space: ..., ...}")
        return cls([make_param(str(name), s) for name, s in spec.items()])

    def spec(self) -> dict[str, dict[str, Any]]:
        return {p.name: p.spec() for p in self.params}

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    def from_unit(self, u: np.ndarray) -> dict[str, Any]:
        """Unit vector (dim,) -> config dict."""
        u = np.asarray(u, dtype=np.float64).reshape(-1)
        if u.shape[0] != self.dim:
            raise ValueError(f"expected a unit vector of length {self.dim}, got shape {u.shape}")
        return {p.name: p.from_unit(float(x)) for p, x in zip(self.params, u, strict=True)}

    def to_unit(self, config: Mapping[str, Any]) -> np.ndarray:
        """Config dict (must hold every parameter) -> unit vector (dim,)."""
        missing = [n for n in self.names if n not in config]
        if missing:
            raise SpaceError(f"config is missing searched parameters {missing}")
        return np.array([p.to_unit(config[p.name]) for p in self.params], dtype=np.float64)

    def snap(self, u: np.ndarray) -> np.ndarray:
        """The unit vector of the value ``u`` actually maps to (integer and choice spaces round)."""
        return self.to_unit(self.from_unit(u))

    def snap_batch(self, u: np.ndarray) -> np.ndarray:
        """Vectorized :meth:`snap` of candidates ``u`` (m, dim)."""
        u = np.asarray(u, dtype=np.float64)
        return np.stack([p.snap_unit(u[:, i]) for i, p in enumerate(self.params)], axis=1)

    def validate(self, config: Mapping[str, Any]) -> list[str]:
        """Names of parameters whose value in ``config`` is missing or outside its space."""
        return [p.name for p in self.params if p.name not in config or not p.contains(config[p.name])]
