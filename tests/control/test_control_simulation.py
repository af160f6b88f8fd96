"""Closed-form simulation: a server with true capacity C behind the adaptive limiter.

The server runs at most C jobs at once (service time S each) and queues the rest FIFO; a client admits a new
request only while its in-flight count is below the limiter's limit (excess offered load is shed at the
client). Under stepped offered load (0.5x, 2x, 5x capacity) the limit must settle within +-20% of C; during an
overload burst (half the server's workers gone while 5x load keeps arriving) it must fall to about C/2, and
once the workers are back it must recover to within +-20% of C.
"""

from __future__ import annotations

import collections
import statistics

import pytest

from dspy_rl.control.limiter import AdaptiveLimiter, LimiterConfig, Sample

C = 16  # true concurrency capacity of the server
S = 0.020  # service time (s)
DT = 0.001  # simulation tick (s)


def simulate(cfg: LimiterConfig, phases: list[tuple[float, float, float]]) -> list[tuple[float, int, str]]:
    """phases: (duration_s, offered load as a multiple of capacity, fraction of the C workers alive)."""
    lim = AdaptiveLimiter(cfg)
    queue: collections.deque[float] = collections.deque()  # arrival times waiting for a worker
    running: list[tuple[float, float]] = []  # (finish time, arrival time)
    in_flight = 0
    credit = 0.0
    t = 0.0
    trace = []
    for duration, load, alive in phases:
        workers = max(1, int(C * alive))
        rate = load * C / S
        for _ in range(int(round(duration / DT))):
            t += DT
            credit += rate * DT
            while credit >= 1.0:
                credit -= 1.0
                if in_flight < lim.limit:
                    in_flight += 1
                    queue.append(t)
            done = [r for r in running if r[0] <= t + 1e-12]
            running = [r for r in running if r[0] > t + 1e-12]
            while queue and len(running) < workers:
                running.append((t + S, queue.popleft()))
            in_flight -= len(done)
            latency = statistics.fmean(t - a for _, a in done) if done else None
            lim.update(
                Sample(
                    latency_s=latency,
                    in_flight=in_flight + len(done),
                    queued=len(queue),
                    requests=len(done),
                    now=t,
                )
            )
            trace.append((t, lim.limit, lim.last_decision.reason))
    return trace


def limits_between(trace, start: float, end: float) -> list[int]:
    return [lim for t, lim, _ in trace if start <= t < end]


PHASES = [(2.0, 0.5, 1.0), (4.0, 2.0, 1.0), (4.0, 5.0, 1.0), (3.0, 5.0, 0.5), (6.0, 5.0, 1.0)]


@pytest.mark.parametrize(
    "cfg",
    [
        LimiterConfig(
            mode="gradient",
            base_limit=4,
            max_limit=200,
            latency_tolerance=1.0,
            smoothing=0.5,
            increase_step=1.0,
            noload_decay=0.001,
            queue_high_watermark=1e9,
            adaptation_interval=0.1,
        ),
        LimiterConfig(
            mode="aimd",
            base_limit=4,
            max_limit=200,
            latency_tolerance=1.1,
            decrease_step=0.2,
            increase_step=1.0,
            noload_decay=0.001,
            queue_high_watermark=1e9,
            adaptation_interval=0.1,
        ),
    ],
    ids=["gradient", "aimd"],
)
def test_limit_settles_near_capacity_and_recovers_after_burst(cfg):
    trace = simulate(cfg, PHASES)
    # 2x and 5x offered load, and again after the burst: the limit tracks C (mean and spread).
    for start, end in [(4.0, 6.0), (8.0, 10.0), (16.0, 19.0)]:
        window = limits_between(trace, start, end)
        assert 0.8 * C <= statistics.fmean(window) <= 1.2 * C, (cfg.mode, start, statistics.fmean(window))
        assert min(window) >= 0.75 * C and max(window) <= 1.3 * C, (cfg.mode, start, min(window), max(window))
    # half the workers gone: the limit follows the capacity down to about C/2 (+-30%) ...
    burst = limits_between(trace, 11.0, 13.0)
    assert 0.35 * C <= statistics.fmean(burst) <= 0.65 * C, (cfg.mode, statistics.fmean(burst))
    # ... without collapsing to the floor or overshooting anywhere
    assert min(lim for t, lim, _ in trace if t > 4.0) >= 0.35 * C
    assert max(lim for _, lim, _ in trace) <= 1.3 * C
