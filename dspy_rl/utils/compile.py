"""``runtime.compile``: a module's forward through ``torch.compile``, with one-line fallback and plain state dicts.

:func:`compile_forward` returns a callable used *in place of* the module's forward (the learner keeps the module
itself for parameters, state dicts and the weights it ships to runners), so no key ever carries the
``_orig_mod.`` prefix that ``torch.compile``'s wrapper adds. If compilation fails at the first call (no C compiler,
an unsupported op), one warning line names the reason and the eager module is used from then on; once the first
call succeeded, later errors are raised, never hidden. :func:`plain_state_dict` strips the prefix from a state dict
that came from a compiled wrapper (e.g. a checkpoint written by another tool), so it loads into an eager module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
from torch import nn

log = logging.getLogger(__name__)

#: The key prefix ``torch.compile``'s ``OptimizedModule`` puts in front of the wrapped module's state-dict keys.
COMPILED_PREFIX = "_orig_mod."

V = TypeVar("V")


def plain_state_dict(state: Mapping[str, V]) -> dict[str, V]:
    """``state`` with every ``_orig_mod.`` segment removed from its keys (a no-op on an eager module's dict)."""
    return {k.replace(COMPILED_PREFIX, ""): v for k, v in state.items()}


def unwrap_compiled(module: nn.Module) -> nn.Module:
    """The eager module under any ``torch.compile`` wrappers."""
    while hasattr(module, "_orig_mod"):
        module = module._orig_mod  # type: ignore[assignment]
    return module


class CompiledForward:
    """Calls ``torch.compile(module)``; on a failure at the first call, warns once and calls ``module`` eagerly.

    Deliberately not an ``nn.Module``: it owns no parameters, so nothing registers the model twice.
    """

    def __init__(self, module: nn.Module, mode: str | None = None) -> None:
        self.eager = module
        self.compiled = torch.compile(module, mode=mode)
        self.active = True  # False once the fallback happened
        self.verified = False  # True once one compiled call succeeded

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.active:
            return self.eager(*args, **kwargs)
        if self.verified:
            return self.compiled(*args, **kwargs)
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compile failure: fall back once, loudly
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning(
                "runtime.compile: torch.compile failed at the first call (%s: %s); training continues "
                "with the eager (uncompiled) module",
                type(exc).__name__,
                reason[:300],
            )
            self.active = False
            return self.eager(*args, **kwargs)
        self.verified = True
        return out


def compile_forward(module: nn.Module, enabled: bool) -> nn.Module | CompiledForward:
    """``module`` itself when not ``enabled``, else a :class:`CompiledForward` over it."""
    return CompiledForward(module) if enabled else module
