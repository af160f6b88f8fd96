"""No silent NaN: a non-finite training value stops the run at once, naming where it appeared.

Learners report per-policy terms as ``<policy>/<term>`` (``A/entropy``, ``C/grad_norm``) and run-wide ones bare
(``loss``). PPO's and env GRPO's metrics are sums over the minibatches of an update, so a NaN or infinity in any
minibatch survives into them; :func:`raise_if_nonfinite` checks them after each update, before anything is logged
or checkpointed, so the last checkpoint on disk is the last good state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class NonFiniteError(RuntimeError):
    """A loss, a loss term or a gradient norm went NaN or infinite; the message says where, in one line."""


def nonfinite_terms(metrics: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{policy: ["term=value", ...]}`` for every non-finite float in ``metrics`` (policy ``"all"`` for the
    keys without a ``<policy>/`` prefix)."""
    bad: dict[str, list[str]] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isfinite(value):
            continue
        policy, _, term = key.rpartition("/")
        bad.setdefault(policy or "all", []).append(f"{term}={value}")
    return bad


def raise_if_nonfinite(metrics: Mapping[str, Any], where: str, kept: str) -> None:
    """Raise :class:`NonFiniteError` if any value of ``metrics`` is NaN or infinite.

    ``where`` says when (``"iteration 7 (env step 14336)"``), ``kept`` what survives (the last good checkpoint).
    """
    bad = nonfinite_terms(metrics)
    if not bad:
        return
    parts = "; ".join(
        (f"policy {p}: " if p != "all" else "") + ", ".join(terms) for p, terms in sorted(bad.items())
    )
    raise NonFiniteError(
        f"non-finite training values at {where}: {parts}. The run stopped before logging or checkpointing them; "
        f"{kept}. Lower algo.lr or algo.max_grad_norm, or check the rewards, then resume"
    )
