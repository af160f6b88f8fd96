"""Ray Serve custom autoscaling policy driven by the adaptive controller.

Serve instantiates :class:`AdaptiveAutoscalingPolicy` once per deployment (class-based policy, kwargs from
``AutoscalingPolicy(policy_kwargs=...)``) and calls it every control-loop tick with an
:class:`~ray.serve.config.AutoscalingContext`. Replicas report, through their ``record_autoscaling_stats``
hook (see :class:`dspy_rl.judges.stats.ReplicaStats`), per-replica gauges over their last window:

``in_flight``   requests inside the replica, ``queue_depth`` of them waiting for the model,
``latency_ms``  mean latency of requests completed in the window, ``requests`` / ``errors`` completed in it,
``gpu_wait``    fraction of time spent waiting for the accelerator (0 on CPU).

Each tick becomes one :class:`~dspy_rl.control.limiter.Sample` *per replica* (averages over replicas), so the
controller's limit is the **concurrency one replica can take** before latency climbs or errors/queues appear.
Demand is Serve's own ``total_num_requests`` (ongoing + queued at handles and replicas); the decision is

    desired_replicas = ceil(demand / (per_replica_limit * target_utilization))

(``target_utilization`` < 1 keeps headroom: a replica saturated at its limit asks for one more, which also
matters when an upstream limiter sheds load so that demand never exceeds the limit), clamped to ``[min_replicas, max_replicas]``; Serve then applies ``upscale_delay_s`` / ``downscale_delay_s`` and
the up/down-scaling factors to it. Replicas slowing down or failing shrink the per-replica limit, which adds
replicas for the same demand; idle deployments shrink back to ``min_replicas``.

Use :func:`autoscaling_config` to build the ``autoscaling_config`` dict for ``@serve.deployment``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from dspy_rl.control.limiter import AdaptiveLimiter, LimiterConfig, Sample

logger = logging.getLogger(__name__)

#: Names of the metrics replicas report from ``record_autoscaling_stats``.
METRIC_KEYS = ("in_flight", "queue_depth", "latency_ms", "requests", "errors", "gpu_wait")


def _per_replica(metrics: Mapping[str, Mapping[Any, float]] | None, key: str) -> list[float]:
    if not metrics or key not in metrics:
        return []
    return [float(v) for v in metrics[key].values() if v is not None and math.isfinite(float(v))]


def sample_from_metrics(
    metrics: Mapping[str, Mapping[Any, float]] | None,
    handle_queued: float,
    num_replicas: int,
    now: float | None,
) -> Sample:
    """Turn per-replica aggregated metrics (``ctx.aggregated_metrics``) into one per-replica :class:`Sample`.

    Latency is the request-weighted mean over replicas; gauges are averaged over ``num_replicas``; queued
    requests at handles (``ctx.total_queued_requests``) are spread over the replicas.
    """
    n = max(1, num_replicas)
    lat = _per_replica(metrics, "latency_ms")
    reqs = _per_replica(metrics, "requests")
    latency_s = None
    if lat:
        # Weight by completed requests; a replica that completed nothing has no latency to report.
        weights = reqs if len(reqs) == len(lat) else [1.0] * len(lat)
        pairs = [(la, w) for la, w in zip(lat, weights, strict=False) if w > 0]
        if pairs:
            latency_s = sum(la * w for la, w in pairs) / sum(w for _, w in pairs) / 1000.0
    requests = int(round(sum(reqs)))
    errors = min(requests, int(round(sum(_per_replica(metrics, "errors")))))
    gpu = _per_replica(metrics, "gpu_wait")
    return Sample(
        latency_s=latency_s,
        in_flight=sum(_per_replica(metrics, "in_flight")) / n,
        queued=(sum(_per_replica(metrics, "queue_depth")) + max(0.0, handle_queued)) / n,
        requests=requests,
        errors=errors,
        gpu_wait=sum(gpu) / len(gpu) if gpu else 0.0,
        now=now,
    )


class AdaptiveAutoscalingPolicy:
    """Class-based Serve autoscaling policy; ``policy_kwargs`` are :class:`LimiterConfig` fields plus
    ``target_utilization``.

    ``__call__(ctx) -> (desired_replicas, policy_state)``; the state carries the controller's view
    (``per_replica_limit``, ``reason``, ``demand``) for ``serve status`` and debugging.
    """

    def __init__(self, target_utilization: float = 0.8, **policy_kwargs: Any) -> None:
        if not 0 < target_utilization <= 1:
            raise ValueError(f"target_utilization={target_utilization!r}: expected a fraction in (0, 1]")
        self.target_utilization = target_utilization
        self.cfg = LimiterConfig(**policy_kwargs)
        self.controller = AdaptiveLimiter(self.cfg)

    def __call__(self, ctx: Any) -> tuple[int, dict[str, Any]]:
        current = int(ctx.current_num_replicas)
        lo, hi = int(ctx.capacity_adjusted_min_replicas), int(ctx.capacity_adjusted_max_replicas)
        demand = float(ctx.total_num_requests or 0.0)
        try:
            metrics = ctx.aggregated_metrics
        except Exception:  # metrics not reported yet (replica starting): decide on demand alone
            logger.debug("no custom metrics yet for %s", getattr(ctx, "deployment_name", "?"), exc_info=True)
            metrics = None
        queued = float(ctx.total_queued_requests or 0.0)
        sample = sample_from_metrics(metrics, queued, current, ctx.current_time)
        limit = self.controller.update(sample)
        # round before ceil so that float noise (e.g. 20 / (5 * 0.8)) does not add a replica
        desired = math.ceil(round(demand / (limit * self.target_utilization), 6)) if demand > 0 else lo
        desired = max(lo, min(hi, desired))
        state = dict(ctx.policy_state or {})
        state.update(
            per_replica_limit=limit,
            reason=self.controller.last_decision.reason,
            demand=demand,
            desired=desired,
        )
        if desired != current:
            logger.info(
                "%s: %d -> %d replicas (demand %.1f, per-replica limit %d, %s)",
                getattr(ctx, "deployment_name", "?"),
                current,
                desired,
                demand,
                limit,
                self.controller.last_decision.reason,
            )
        return desired, state


def autoscaling_config(
    min_replicas: int,
    max_replicas: int,
    limiter: LimiterConfig | Mapping[str, Any] | None = None,
    initial_replicas: int | None = None,
    upscale_delay_s: float = 1.0,
    downscale_delay_s: float = 5.0,
    look_back_period_s: float = 2.0,
    metrics_interval_s: float = 0.5,
    target_utilization: float = 0.8,
) -> dict[str, Any]:
    """An ``autoscaling_config`` dict for ``@serve.deployment`` using :class:`AdaptiveAutoscalingPolicy`.

    ``metrics_interval_s`` is how often replicas and handles push metrics to the Serve controller (Serve 2.60
    still reads it from the config although it is marked deprecated); keep it below ``look_back_period_s``.
    """
    from ray.serve.config import AutoscalingPolicy

    if not 0 <= min_replicas <= max_replicas or max_replicas < 1:
        raise ValueError(
            f"min_replicas={min_replicas}, max_replicas={max_replicas}: expected 0 <= min <= max and max >= 1"
        )
    if isinstance(limiter, LimiterConfig):
        kwargs = {k: getattr(limiter, k) for k in limiter.__dataclass_fields__}
    else:
        kwargs = dict(limiter or {})
    if not 0 < metrics_interval_s < look_back_period_s:
        raise ValueError(
            f"metrics_interval_s={metrics_interval_s}, look_back_period_s={look_back_period_s}: "
            "expected 0 < metrics_interval_s < look_back_period_s"
        )
    LimiterConfig(**kwargs)  # validate here, in the caller's process, not inside the Serve controller
    if not 0 < target_utilization <= 1:
        raise ValueError(f"target_utilization={target_utilization!r}: expected a fraction in (0, 1]")
    kwargs["target_utilization"] = target_utilization
    cfg: dict[str, Any] = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "upscale_delay_s": upscale_delay_s,
        "downscale_delay_s": downscale_delay_s,
        "look_back_period_s": look_back_period_s,
        "metrics_interval_s": metrics_interval_s,
        "policy": AutoscalingPolicy(policy_function=AdaptiveAutoscalingPolicy, policy_kwargs=kwargs),
    }
    if initial_replicas is not None:
        cfg["initial_replicas"] = initial_replicas
    return cfg
