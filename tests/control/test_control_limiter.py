"""Controller core: exact next limits for given samples (concurrency-limits style) and config validation."""

from __future__ import annotations

import pytest

from dspy_rl.control.limiter import AdaptiveLimiter, LimiterConfig, LimiterConfigError, Sample


def aimd(**kw) -> AdaptiveLimiter:
    base = dict(mode="aimd", base_limit=4, min_limit=1, max_limit=8, adaptation_interval=0)
    base.update(kw)
    return AdaptiveLimiter(LimiterConfig(**base))


def ok(lat=0.01, in_flight=4.0, now=0.0, **kw) -> Sample:
    return Sample(latency_s=lat, in_flight=in_flight, requests=kw.pop("requests", 4), now=now, **kw)


def test_aimd_increases_additively_when_utilized():
    lim = aimd()
    assert lim.update(ok(now=0)) == 5
    assert lim.update(ok(in_flight=5, now=1)) == 6
    assert lim.last_decision.reason == "increase"


def test_aimd_holds_when_app_limited():
    lim = aimd(base_limit=6)
    # peak in-flight 2 < limit/2 = 3: the service is not the bottleneck, do not grow.
    assert lim.update(ok(in_flight=2)) == 6
    assert lim.last_decision.reason == "app-limited"


def test_aimd_backs_off_multiplicatively_on_latency():
    lim = aimd(decrease_step=0.25, latency_tolerance=2.0, noload_decay=0.0)
    assert lim.update(ok(lat=0.010, now=0)) == 5  # sets rtt_noload = 10 ms
    assert lim.update(ok(lat=0.019, in_flight=5, now=1)) == 6  # 19 ms < 2 x 10 ms: still healthy
    assert lim.update(ok(lat=0.021, in_flight=6, now=2)) == 4  # 21 ms > 20 ms: 6 * 0.75 = 4.5
    assert lim.last_decision.reason == "latency"
    assert lim.rtt_noload == pytest.approx(0.010)


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        (Sample(latency_s=0.01, in_flight=8, requests=10, errors=1), "errors"),  # 10% > 5%
        (Sample(latency_s=0.01, in_flight=8, requests=10, queued=9), "queue"),  # 9 > 8
        (Sample(latency_s=0.01, in_flight=8, requests=10, gpu_wait=0.6), "gpu-wait"),  # 0.6 > 0.5
    ],
)
@pytest.mark.parametrize("mode", ["aimd", "gradient"])
def test_congestion_signals_back_off_in_both_modes(sample, reason, mode):
    lim = AdaptiveLimiter(
        LimiterConfig(mode=mode, base_limit=8, max_limit=16, decrease_step=0.5, adaptation_interval=0)
    )
    assert lim.update(sample) == 4
    assert lim.last_decision.reason == reason


def test_signals_at_the_threshold_are_not_congestion():
    lim = aimd(base_limit=4)
    s = Sample(latency_s=0.01, in_flight=4, requests=20, errors=1, queued=8, gpu_wait=0.5)  # 5%, 8, 0.5
    assert lim.update(s) == 5


def test_limit_is_clamped_to_min_and_max():
    lim = aimd(base_limit=2, min_limit=2, max_limit=3)
    assert [lim.update(ok(in_flight=8, now=t)) for t in range(3)] == [3, 3, 3]
    bad = Sample(latency_s=0.01, in_flight=3, requests=1, errors=1)
    assert [lim.update(bad) for _ in range(3)] == [2, 2, 2]


def test_adaptation_interval_aggregates_the_window():
    lim = aimd(base_limit=4, adaptation_interval=1.0)
    # 1 error in 10 requests over the window (10% > 5%) only shows when the window closes at t=1.
    assert lim.update(Sample(latency_s=0.01, in_flight=4, requests=5, errors=0, now=0.0)) == 4
    assert lim.update(Sample(latency_s=0.01, in_flight=4, requests=4, errors=0, now=0.5)) == 4
    assert lim.update(Sample(latency_s=0.01, in_flight=4, requests=1, errors=1, now=1.0)) == 3
    assert lim.last_decision.error_rate == pytest.approx(0.1)
    # the next window opens at the next sample
    assert lim.update(ok(now=1.2)) == 3
    assert lim.update(ok(now=2.2)) == 4


def test_gradient_exact_steps():
    cfg = LimiterConfig(
        mode="gradient",
        base_limit=10,
        max_limit=100,
        increase_step=1.0,
        smoothing=0.5,
        latency_tolerance=2.0,
        noload_decay=0.01,
        adaptation_interval=0,
    )
    lim = AdaptiveLimiter(cfg)
    # rtt = rtt_noload: gradient 1 -> target 11, smoothed 10.5
    assert lim.update(Sample(latency_s=0.010, in_flight=10, requests=10)) == 10
    # rtt 40 ms; rtt_noload drifts to 10.3 ms; gradient = 2 * 10.3 / 40 = 0.515
    # target = 10.5 * 0.515 + 1 = 6.4075; smoothed = 0.5 * 10.5 + 0.5 * 6.4075 = 8.45375
    assert lim.update(Sample(latency_s=0.040, in_flight=10, requests=10)) == 8
    assert lim.last_decision.reason == "gradient"
    assert lim.rtt_noload == pytest.approx(0.0103)
    # gradient is floored at 0.5: rtt 1 s -> target = 8.45375 * 0.5 + 1 = 5.226875; smoothed 6.84...
    assert lim.update(Sample(latency_s=1.0, in_flight=8, requests=10)) == 6


def test_gradient_does_not_grow_when_app_limited_and_probes_without_latency():
    lim = AdaptiveLimiter(LimiterConfig(mode="gradient", base_limit=10, adaptation_interval=0))
    assert lim.update(Sample(latency_s=0.01, in_flight=2, requests=2)) == 10
    assert lim.last_decision.reason == "app-limited"
    assert lim.update(Sample(latency_s=None, in_flight=10)) == 11


def test_set_limit_clamps():
    lim = aimd(min_limit=2, max_limit=8)
    assert lim.set_limit(100) == 8
    assert lim.set_limit(0) == 2


@pytest.mark.parametrize(
    ("kw", "key"),
    [
        (dict(mode="pid"), "mode"),
        (dict(min_limit=0), "min_limit"),
        (dict(min_limit=4, max_limit=2, base_limit=4), "max_limit"),
        (dict(base_limit=100, max_limit=10), "base_limit"),
        (dict(decrease_step=1.0), "decrease_step"),
        (dict(increase_step=0), "increase_step"),
        (dict(error_rate_high=0), "error_rate_high"),
        (dict(adaptation_interval=-1), "adaptation_interval"),
        (dict(latency_tolerance=0.5), "latency_tolerance"),
    ],
)
def test_config_validation_names_the_key(kw, key):
    with pytest.raises(LimiterConfigError, match=f"control.{key}="):
        LimiterConfig(**kw)


@pytest.mark.parametrize(
    "kw",
    [dict(latency_s=-1.0), dict(latency_s=float("nan")), dict(in_flight=-1), dict(requests=1, errors=2)],
)
def test_bad_samples_are_rejected(kw):
    with pytest.raises(ValueError, match="Sample"):
        Sample(**kw)
