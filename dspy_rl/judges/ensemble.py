"""Fan a batch out to several judges under one deadline and aggregate what comes back in time.

:func:`fan_out` starts every judge call at once and waits until ``deadline_s``; a judge that raised, returned
the wrong number of scores, or is still running at the deadline (its call is cancelled) is *left out* with the
reason. Optional per-judge :class:`~dspy_rl.control.concurrency.ConcurrencyLimiter`\\ s shed load: a judge
whose limiter has no free permit is skipped at once (reason ``shed``) instead of queueing behind its backlog.

:func:`aggregate` combines one item's answers: the weighted mean of the answered judges' scores with the
weights renormalized over those judges, the ``spread`` (max - min of the answered scores), which judges
answered and which were left out (and why), and a one-line explanation per judge. Rewards computed from the
item's context (tool and coordination rewards from the rubric) are passed through under ``rewards``.
The ensemble never fails as a whole unless *no* judge answered (:class:`NoJudgeAnswered`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from dspy_rl.control.concurrency import ConcurrencyLimiter

logger = logging.getLogger(__name__)

#: components that are rewards (not parts of the [0, 1] quality score) and are reported separately
REWARD_COMPONENTS = ("tool_reward", "coordination_reward")

JudgeCall = Callable[[], Awaitable[list[dict[str, Any]]]]


class NoJudgeAnswered(RuntimeError):
    """Every judge failed, was late, or was shed; carries the reasons."""

    def __init__(self, left_out: Mapping[str, str]) -> None:
        self.left_out = dict(left_out)
        reasons = "; ".join(f"{k}: {v}" for k, v in self.left_out.items()) or "no judges configured"
        super().__init__(f"no judge answered ({reasons})")


def _error_kind(exc: BaseException) -> str:
    """The exception's class name, with a Ray task error reduced to the class of its cause."""
    cause = getattr(exc, "cause", None)
    return type(cause).__name__ if isinstance(cause, BaseException) else type(exc).__name__


async def fan_out(
    calls: Mapping[str, JudgeCall],
    deadline_s: float,
    n_items: int,
    limiters: Mapping[str, ConcurrencyLimiter] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Run ``calls`` concurrently; returns (answers by judge, reasons by left-out judge).

    Each call must return ``n_items`` score dicts (``{"score", "explanation", "components"}``).
    """
    if deadline_s <= 0:
        raise ValueError(f"deadline_s={deadline_s!r}: expected seconds > 0")
    limiters = limiters or {}
    left_out: dict[str, str] = {}
    tasks: dict[asyncio.Task[list[dict[str, Any]]], str] = {}
    permits = {}
    for name, call in calls.items():
        limiter = limiters.get(name)
        if limiter is not None:
            permit = limiter.try_acquire()
            if permit is None:
                left_out[name] = f"shed (limit {limiter.limit} in flight)"
                continue
            permits[name] = permit
        tasks[asyncio.ensure_future(call())] = name
    start = time.monotonic()
    answers: dict[str, list[dict[str, Any]]] = {}
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=deadline_s)
        for task in pending:
            task.cancel()
            left_out[tasks[task]] = f"timeout after {deadline_s:g}s"
        for task in done:
            name = tasks[task]
            exc = task.exception()
            if exc is not None:
                # the client sees the kind only: Ray's error text carries node addresses, PIDs and tracebacks
                logger.warning("judge %s failed: %s", name, exc)
                left_out[name] = f"error ({_error_kind(exc)})"
                continue
            result = task.result()
            if not isinstance(result, list) or len(result) != n_items:
                got = len(result) if isinstance(result, list) else type(result).__name__
                left_out[name] = f"error: expected {n_items} scores, got {got}"
                continue
            answers[name] = result
        for task in pending:
            # let cancellations settle so nothing is left running against a dead request
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
    elapsed = time.monotonic() - start
    for name, permit in permits.items():
        permit.release(error=name in left_out)
    if left_out:
        logger.info("ensemble left out %s after %.3fs", left_out, elapsed)
    return answers, left_out


def aggregate(
    per_judge: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float], left_out: Mapping[str, str]
) -> dict[str, Any]:
    """Combine one item's judge answers (``{judge: {"score", "explanation", "components"}}``)."""
    answered = [name for name in per_judge if weights.get(name, 0.0) > 0]
    if not answered:
        raise NoJudgeAnswered(left_out)
    total_w = sum(weights[n] for n in answered)
    scores = {n: float(per_judge[n]["score"]) for n in answered}
    score = sum(weights[n] * scores[n] for n in answered) / total_w
    rewards: dict[str, float] = {}
    for n in answered:
        for key in REWARD_COMPONENTS:
            if key in per_judge[n].get("components", {}):
                rewards[key] = float(per_judge[n]["components"][key])
    parts = [
        f"{n} {scores[n]:.2f} (w={weights[n] / total_w:.2f}): {per_judge[n].get('explanation', '')}"
        for n in answered
    ]
    if left_out:
        parts.append("left out: " + ", ".join(f"{n} ({why})" for n, why in left_out.items()))
    out: dict[str, Any] = {
        "score": score,
        "per_judge": scores,
        "spread": max(scores.values()) - min(scores.values()),
        "answered": answered,
        "left_out": dict(left_out),
        "explanation": "; ".join(parts),
    }
    if rewards:
        out["rewards"] = rewards
    return out


async def judge_batch(
    calls: Mapping[str, JudgeCall],
    weights: Mapping[str, float],
    n_items: int,
    deadline_s: float,
    limiters: Mapping[str, ConcurrencyLimiter] | None = None,
) -> list[dict[str, Any]]:
    """Fan out, then aggregate per item. Raises :class:`NoJudgeAnswered` only if nobody answered."""
    answers, left_out = await fan_out(calls, deadline_s, n_items, limiters)
    return [aggregate({n: a[i] for n, a in answers.items()}, weights, left_out) for i in range(n_items)]


def validate_weights(weights: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """Weights for exactly ``names``, each finite and >= 0, at least one > 0."""
    missing = [n for n in names if n not in weights]
    if missing:
        raise ValueError(f"no weight for judge(s) {missing}")
    out = {n: float(weights[n]) for n in names}
    if any(not (w >= 0 and w != float("inf")) for w in out.values()) or not any(w > 0 for w in out.values()):
        raise ValueError(f"judge weights {out}: each must be a finite number >= 0 and at least one > 0")
    return out
