"""The Serve autoscaling policy against constructed AutoscalingContexts (no Serve instance needed)."""

from __future__ import annotations

import pytest
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from dspy_rl.control.limiter import LimiterConfigError
from dspy_rl.control.serve_policy import AdaptiveAutoscalingPolicy, autoscaling_config, sample_from_metrics

KW = dict(
    mode="aimd",
    base_limit=4,
    min_limit=1,
    max_limit=16,
    decrease_step=0.5,
    adaptation_interval=0,
    queue_high_watermark=4,
)


def ctx(
    current: int,
    demand: float,
    metrics: dict | None,
    queued: float = 0.0,
    now: float = 0.0,
    lo: int = 1,
    hi: int = 8,
    state: dict | None = None,
) -> AutoscalingContext:
    replicas = [f"r{i}" for i in range(current)]
    return AutoscalingContext(
        deployment_id=None,
        deployment_name="judge_embedding",
        app_name="judges",
        current_num_replicas=current,
        target_num_replicas=current,
        running_replicas=replicas,
        total_num_requests=demand,
        total_queued_requests=queued,
        aggregated_metrics=lambda: {
            k: dict(zip(replicas, v, strict=True)) for k, v in (metrics or {}).items()
        },
        raw_metrics=None,
        capacity_adjusted_min_replicas=lo,
        capacity_adjusted_max_replicas=hi,
        policy_state=state or {},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=now,
        config=AutoscalingConfig(min_replicas=lo, max_replicas=hi),
    )


def healthy(n: int, in_flight: float, latency_ms: float = 10.0) -> dict:
    return {
        "in_flight": [in_flight] * n,
        "queue_depth": [0.0] * n,
        "latency_ms": [latency_ms] * n,
        "requests": [10.0] * n,
        "errors": [0.0] * n,
    }


def test_policy_kwargs_round_trip_through_serve_config():
    cfg = autoscaling_config(1, 4, KW, target_utilization=0.5)
    policy = cfg["policy"]
    assert policy.policy_kwargs == {**KW, "target_utilization": 0.5}
    cls = policy.get_policy()
    assert cls.__name__ == "AdaptiveAutoscalingPolicy"
    assert cls(**policy.policy_kwargs).cfg.mode == "aimd"
    AutoscalingConfig(**cfg)  # accepted by Serve's own validation


def test_scales_demand_over_per_replica_limit_and_back_down_when_idle():
    pol = AdaptiveAutoscalingPolicy(target_utilization=1.0, **KW)
    # 1 replica, 4 busy (utilized, healthy): limit 4 -> 5; demand 20 -> ceil(20 / 5) = 4 replicas
    n, state = pol(ctx(1, demand=20, metrics=healthy(1, 4), now=0))
    assert (n, state["per_replica_limit"], state["reason"]) == (4, 5, "increase")
    # 4 replicas now, a queue builds up (5 per replica > 4): congestion halves the limit -> 2 -> 8 replicas (max)
    m = healthy(4, 5)
    m["queue_depth"] = [5.0] * 4
    n, state = pol(ctx(4, demand=40, metrics=m, now=1))
    assert (n, state["per_replica_limit"], state["reason"]) == (8, 2, "queue")
    # errors count as congestion too; the result is capped by max_replicas
    m = healthy(8, 2)
    m["errors"] = [5.0] * 8
    n, state = pol(ctx(8, demand=100, metrics=m, now=2, hi=8))
    assert (n, state["per_replica_limit"], state["reason"]) == (8, 1, "errors")
    # load stops: no demand -> min_replicas
    n, state = pol(ctx(8, demand=0, metrics=healthy(8, 0), now=3, lo=1))
    assert n == 1 and state["demand"] == 0


def test_headroom_adds_a_replica_when_one_is_saturated_at_its_limit():
    # shedding upstream caps demand at about the limit: 4 in flight, limit 4 -> with 0.8 utilization, 2 replicas
    pol = AdaptiveAutoscalingPolicy(target_utilization=0.8, **{**KW, "mode": "gradient", "base_limit": 4})
    n, state = pol(ctx(1, demand=4, metrics=healthy(1, 4, latency_ms=10.0), now=0))
    assert state["per_replica_limit"] == 4 and n == 2
    n, _ = pol(ctx(2, demand=2, metrics=healthy(2, 1, latency_ms=10.0), now=1))
    assert n == 1  # 2 / (4 * 0.8) -> 1
    with pytest.raises(ValueError, match="target_utilization"):
        AdaptiveAutoscalingPolicy(target_utilization=0)


def test_keeps_user_state_and_tolerates_missing_metrics():
    pol = AdaptiveAutoscalingPolicy(target_utilization=1.0, **KW)
    n, state = pol(ctx(2, demand=6, metrics=None, now=0, state={"serve-internal": 1}))
    assert state["serve-internal"] == 1
    assert n == 2  # ceil(6 / 4): no metrics, the limit stays at base_limit (no latency, not utilized)


def test_sample_from_metrics_weights_latency_by_requests_and_spreads_handle_queue():
    m = {
        "latency_ms": {"a": 10.0, "b": 40.0},
        "requests": {"a": 3.0, "b": 1.0},
        "in_flight": {"a": 2.0, "b": 4.0},
        "queue_depth": {"a": 1.0, "b": 3.0},
        "errors": {"a": 0.0, "b": 1.0},
        "gpu_wait": {"a": 0.2, "b": 0.4},
    }
    s = sample_from_metrics(m, handle_queued=4.0, num_replicas=2, now=1.0)
    assert s.latency_s == pytest.approx((10 * 3 + 40 * 1) / 4 / 1000)
    assert (s.in_flight, s.queued, s.requests, s.errors) == (3.0, 4.0, 4, 1)
    assert s.gpu_wait == pytest.approx(0.3)


def test_bad_policy_kwargs_fail_in_the_caller():
    with pytest.raises(LimiterConfigError, match="control.decrease_step"):
        autoscaling_config(1, 2, {"decrease_step": 2.0})
    with pytest.raises(ValueError, match="min_replicas"):
        autoscaling_config(3, 2)


def test_idle_replicas_report_no_latency():
    m = {"latency_ms": {"a": 0.0}, "requests": {"a": 0.0}, "in_flight": {"a": 0.0}}
    assert sample_from_metrics(m, 0.0, 1, 0.0).latency_s is None
