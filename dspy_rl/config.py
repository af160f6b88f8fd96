"""Hydra composition shared by every ``dspy-rl`` command.

Commands use the Compose API rather than ``@hydra.main`` so that one command line can mix Hydra overrides
(``algo.lr=3e-4 env=hard``) with ``--flag value`` aliases (``--hours 48`` is ``hours=48``, ``--continuous`` is
``continuous=true``). Structured configs (dataclasses registered in Hydra's ConfigStore) check types; each
dataclass may check ranges in ``__post_init__`` with :func:`require`, which raises :class:`ConfigError` naming the
key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
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
    or a ``key=value`` token is a boolean switch set to ``true``. A flag in ``retired`` (or
    :data:`RETIRED_FLAGS`) raises ConfigError "--flag is no longer supported: <what replaced it>".
    """
    aliases = {k.replace("-", "_"): v for k, v in (aliases or {}).items()}
    gone = {k.replace("-", "_"): v for k, v in {**RETIRED_FLAGS, **(retired or {})}.items()}
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and len(tok) > 2:
            name, eq, inline = tok[2:].partition("=")
            if name.replace("-", "_") in gone:
                raise ConfigError(f"--{name} is no longer supported: {gone[name.replace('-', '_')]}")
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
    """Compose ``conf/<config_name>.yaml`` with the command line; errors become :class:`ConfigError`."""
    overrides = flags_to_overrides(argv, aliases, retired)
    directory = str(Path(config_dir or conf_dir()).resolve())
    try:
        with initialize_config_dir(config_dir=directory, version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError(f"{exc}".strip()) from exc
    return cfg


def to_object(cfg: DictConfig, schema: type | None = None) -> Any:
    """Instantiate the structured config (runs ``__post_init__`` range checks); errors become ConfigError."""
    try:
        if schema is not None:
            merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
            return OmegaConf.to_object(merged)
        return OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(str(exc).strip()) from exc


def asdict(obj: Any) -> dict[str, Any]:
    """A plain dict of a (nested) dataclass config, for logging and checkpoints."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else OmegaConf.to_container(obj)
