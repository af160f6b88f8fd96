"""Hydra composition shared by every ``dspy-rl`` command.

Commands use the Compose API rather than ``@hydra.main`` so that one command line can mix Hydra overrides
(``algo.lr=3e-4 env=hard``) with ``--flag value`` aliases (``--hours 48`` is ``hours=48``, ``--continuous`` is
``continuous=true``). Structured configs (dataclasses registered in Hydra's ConfigStore) check types; each
dataclass may check ranges in ``__post_init__`` with :func:`require`, which raises :class:`ConfigError` naming the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dspy_rl import conf_dir


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type, or out of range."""


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` unless ``ok``: ``require(lr > 0, "algo.lr", lr, "a float > 0")``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed; expected {allowed}")


#: Seed flags with no meaning in any command any more: flag -> the reason and what replaced it.
RETIRED_FLAGS: dict[str, str] = {
    "reddb_url": "the trace store is a SQLite file now: pass store=PATH (dspy-rl stream) or db=PATH (grpo mine)",
    "spark_master": "Ray replaced Spark: pass runtime.ray_address=HOST:PORT (or use dspy-rl submit)",
}


def _flag_value(value: str) -> str:
    """A ``--flag`` value is taken as is: quoted for Hydra when it holds commas (a sweep), spaces, parentheses or quotes."""
    if any(c in value for c in " \t,()'\"\\") and value[:1] not in ("[", "{", "'", '"'):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return value


def flags_to_overrides(
    argv: Sequence[str], aliases: Mapping[str, str] | None = None, retired: Mapping[str, str] | None = None
) -> list[str]:
    """Turn ``--flag value`` / ``--flag`` / ``key=value`` tokens into Hydra overrides.

    ``aliases`` maps a flag name (without dashes, ``-`` and ``_`` equivalent) to a config key; flags not in the
    map become the key of the same name with ``-`` replaced by ``_``. A flag followed by nothing, another flag,
    or a ``key=value`` token is a boolean switch set to ``true``. ``retired`` maps a flag that no longer exists to
    what replaced it (or why it is gone): using it is a :class:`ConfigError` saying so in one line. The seed flags
    in :data:`RETIRED_FLAGS` are refused by every command.
    """
    aliases = {k.replace("-", "_"): v for k, v in (aliases or {}).items()}
    retired = {k.replace("-", "_"): v for k, v in {**RETIRED_FLAGS, **(retired or {})}.items()}
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and len(tok) > 2:
            name, eq, inline = tok[2:].partition("=")
            if name.replace("-", "_") in retired:
                raise ConfigError(f"--{name} is no longer supported: {retired[name.replace('-', '_')]}")
            key = aliases.get(name.replace("-", "_"), name.replace("-", "_"))
            if eq:
                out.append(f"{key}={_flag_value(inline)}")
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--") and "=" not in argv[i + 1]:
                out.append(f"{key}={_flag_value(argv[i + 1])}")
                i += 1
            else:
                out.append(f"{key}=true")
        elif "=" in tok or tok.startswith(("+", "~")):
            out.append(tok)
        else:
            raise ConfigError(
                f"unexpected argument {tok!r}: pass settings as key=value (Hydra) or --flag value"
            )
        i += 1
    return out


def compose(
    config_name: str,
    argv: Sequence[str] = (),
    aliases: Mapping[str, str] | None = None,
    config_dir: str | Path | None = None,
    retired: Mapping[str, str] | None = None,
) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with the command line (``--flag`` aliases and retired flags as in
    :func:`flags_to_overrides`); errors become :class:`ConfigError`."""
    overrides = flags_to_overrides(argv, aliases, retired)
    directory = str(Path(config_dir or conf_dir()).resolve())
    try:
        with initialize_config_dir(config_dir=directory, version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(one_line_error(exc)) from exc
    return cfg


def to_object(cfg: DictConfig, schema: type | None = None) -> Any:
    """Instantiate the structured config (runs ``__post_init__`` range checks); errors become ConfigError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg) if schema is not None else cfg
        require_finite(merged)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(one_line_error(exc)) from exc


def require_finite(cfg: Any, prefix: str = "") -> None:
    """:class:`ConfigError` for the first float setting of ``cfg`` (a DictConfig/ListConfig, recursively) that is
    NaN or infinite: no setting of dspy-rl means anything as NaN or infinity (``algo.ent_coef=inf`` would
    train NaN weights)."""
    items = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else enumerate(cfg)
    for key, _ in items:
        full = (
            f"{prefix}.{key}"
            if prefix and isinstance(key, str)
            else f"{prefix}[{key}]"
            if prefix
            else str(key)
        )
        node = cfg._get_node(key)
        if isinstance(node, DictConfig | ListConfig):
            require_finite(node, full)
            continue
        value = node._value() if node is not None else None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{full}={value!r} is not allowed; expected a finite number (not NaN or infinity)"
            )


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _expected(object_type: Any, key: Any) -> str | None:
    """What the dataclass field ``key`` of ``object_type`` accepts, in words (None if unknown)."""
    fields = getattr(object_type, "__dataclass_fields__", {})
    if key not in fields:
        return None
    annotation = str(fields[key].type).replace("typing.", "").replace("Optional[", "").rstrip("]")
    parts = [p.strip() for p in annotation.split("|")]
    words = [_KINDS.get(p, p) for p in parts if p != "None"]
    if not words:
        return None
    return " or ".join(words) + (" or null" if "None" in parts or "Optional" in str(fields[key].type) else "")


def one_line_error(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line errors as one line naming the key, the value and what is allowed."""
    import re

    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 5:
        chain.append(e)
        e = e.__cause__
    for err in chain:
        full_key = getattr(err, "full_key", None)
        if not full_key:
            continue
        object_type = getattr(err, "object_type", None)
        key = getattr(err, "key", None)
        kind = type(err).__name__
        if kind in ("ConfigAttributeError", "ConfigKeyError") or "not in" in str(getattr(err, "msg", "")):
            known = sorted(getattr(object_type, "__dataclass_fields__", {}))
            return f"unknown setting {full_key!r}" + (
                f"; the settings there are {', '.join(known)}" if known else ""
            )
        value = getattr(err, "value", None)
        allowed = _expected(object_type, key)
        if allowed:
            return f"{full_key}={value!r} is not allowed; expected {allowed}"
        first = str(getattr(err, "msg", err)).strip().splitlines()[0]
        return f"{full_key}: {first}"
    text = str(exc).strip()
    missing = re.search(
        r"Could not find '([^'/]+)/([^']+)'\s+Available options in '[^']+':\s*((?:\s*\S+\n?)*?)Config", text
    )
    if missing:
        options = ", ".join(missing.group(3).split())
        return f"{missing.group(1)}={missing.group(2)} is not allowed; expected one of {options}"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("provider=")
    ]
    return "; ".join(x for x in lines if x != "Config search path:")


def asdict(obj: Any) -> dict[str, Any]:
    """A plain dict of a (nested) dataclass config, for logging and checkpoints."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else OmegaConf.to_container(obj)
