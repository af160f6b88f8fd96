"""The one ``--help`` renderer of every ``dspy-rl`` command and subcommand.

A command's help is its usage text (the command module's docstring: what it does, examples), then, for commands
configured by Hydra, every setting with its current default (the schema's default or the one its conf/ file sets)
and the setting's documentation: the docstring under the field in the structured-config dataclass, the one place a
setting is declared. Commands with subcommands list them.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import OmegaConf

from dspy_rl.config import compose

HELP_FLAGS = ("-h", "--help", "help")


def wants_help(argv: Sequence[str]) -> bool:
    """``-h``/``--help`` anywhere on the command line (or ``help`` as the first word)."""
    return any(a in ("-h", "--help") for a in argv) or (bool(argv) and argv[0] == "help")


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the docstring written under it in the dataclass body (base classes included)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError):
            continue
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _default_instance(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _settings(schema: type, composed: Any, prefix: str = "") -> list[str]:
    lines: list[str] = []
    docs = field_docs(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        default = _default_instance(f)
        if dataclasses.is_dataclass(default):
            lines += _settings(type(default), composed, f"{key}.")
            continue
        value = OmegaConf.select(composed, key, default=default)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value)
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
        lines.append(f"  {key}={shown}")
        if docs.get(f.name):
            lines += textwrap.wrap(
                docs[f.name], width=108, initial_indent="      ", subsequent_indent="      "
            )
    return lines


def render(
    usage: str,
    config_name: str | None = None,
    schema: type | None = None,
    subcommands: Mapping[str, str] | None = None,
    prefix: str = "",
) -> str:
    """The help text: ``usage``, then ``subcommands`` (name -> one line), then the settings of ``schema`` as
    composed from ``conf/<config_name>.yaml`` (only those under ``prefix`` when given)."""
    out = [inspect.cleandoc(usage)]
    if subcommands:
        out += ["", "subcommands:"] + [f"  {name:<12} {line}" for name, line in subcommands.items()]
    if schema is not None and config_name is not None:
        composed = compose(config_name, [])
        lines = _settings(schema, composed)
        if prefix:
            keep, take = [], False
            for line in lines:
                if not line.startswith("      "):
                    take = line.startswith(f"  {prefix}")
                if take:
                    keep.append(line)
            lines = keep
        out += [
            "",
            f"settings (key=value, or --key value; defaults from conf/{config_name}.yaml over the schema):",
            *lines,
        ]
    return "\n".join(out)
