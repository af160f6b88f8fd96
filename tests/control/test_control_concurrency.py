"""ConcurrencyLimiter (threads and asyncio) and the EnvRunner pool sizer."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from dspy_rl.control.concurrency import ConcurrencyLimiter, LimitExceeded
from dspy_rl.control.limiter import LimiterConfig
from dspy_rl.control.pool import PoolSizer, target_runner_count


def fixed(limit: int) -> LimiterConfig:
    # min == max: the permit count cannot move, so the bound is exact
    return LimiterConfig(base_limit=limit, min_limit=limit, max_limit=limit)


def test_threads_never_exceed_the_limit():
    lim = ConcurrencyLimiter(fixed(3))
    peak, current, guard = [0], [0], threading.Lock()

    def work():
        with lim.acquire():
            with guard:
                current[0] += 1
                peak[0] = max(peak[0], current[0])
            time.sleep(0.01)
            with guard:
                current[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3
    st = lim.stats()
    assert (st.in_flight, st.waiting, st.completed, st.errors) == (0, 0, 12, 0)


def test_async_bound_fifo_and_errors_are_counted():
    lim = ConcurrencyLimiter(fixed(2))
    order: list[int] = []
    peak, current = [0], [0]

    async def work(i: int):
        async with lim.acquire_async():
            current[0] += 1
            peak[0] = max(peak[0], current[0])
            order.append(i)
            await asyncio.sleep(0.01)
            current[0] -= 1
            if i == 5:
                raise RuntimeError("judge failed")

    async def main():
        return await asyncio.gather(*(work(i) for i in range(8)), return_exceptions=True)

    results = asyncio.run(main())
    assert peak[0] == 2
    assert order == list(range(8))  # first come, first served
    assert isinstance(results[5], RuntimeError)
    assert lim.stats().errors == 1 and lim.stats().completed == 8


def test_try_acquire_sheds_and_timeout_raises():
    lim = ConcurrencyLimiter(fixed(1))
    held = lim.try_acquire()
    assert held is not None
    assert lim.try_acquire() is None
    with pytest.raises(LimitExceeded):
        lim.acquire_permit(timeout=0.01)

    async def wait_async():
        async with lim.acquire_async(timeout=0.01):
            pass

    with pytest.raises(LimitExceeded):
        asyncio.run(wait_async())
    held.release()
    assert lim.stats().rejected == 3 and lim.stats().waiting == 0
    with pytest.raises(RuntimeError, match="twice"):
        held.release()
    # the timed-out waiters left no stale entries: the next acquire is immediate
    p = lim.try_acquire()
    assert p is not None
    p.release()


def test_errors_shrink_the_limit():
    lim = ConcurrencyLimiter(
        LimiterConfig(mode="aimd", base_limit=8, decrease_step=0.5, adaptation_interval=0)
    )
    with pytest.raises(ValueError):
        with lim.acquire():
            raise ValueError("boom")
    assert lim.limit == 4


def test_pool_sizer_grows_when_learners_starve_and_shrinks_when_rollouts_queue():
    sizer = PoolSizer(
        LimiterConfig(
            mode="aimd",
            base_limit=2,
            min_limit=1,
            max_limit=4,
            queue_high_watermark=3,
            decrease_step=0.5,
            adaptation_interval=0,
        )
    )
    assert sizer.update(current=2, learner_wait_frac=0.5, rollout_queue=0, now=0) == 3
    assert sizer.update(current=3, learner_wait_frac=0.5, rollout_queue=0, now=1) == 4
    assert sizer.update(current=4, learner_wait_frac=0.5, rollout_queue=0, now=2) == 4  # max
    assert sizer.update(current=4, learner_wait_frac=0.0, rollout_queue=1, now=3) == 4  # balanced: hold
    assert sizer.update(current=4, learner_wait_frac=0.0, rollout_queue=5, now=4) == 2  # queue > 3: halve
    # a runner died: the sizer starts from the live count
    assert target_runner_count(sizer, current=1, learner_wait_frac=0.9, rollout_queue=0, now=5) == 2
    with pytest.raises(ValueError, match="learner_wait_frac"):
        sizer.update(current=1, learner_wait_frac=2.0, rollout_queue=0)
