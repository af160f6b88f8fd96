"""The adaptive policy inside a real Ray Serve: replicas scale up under load and back down after it stops.

The judge under load is the LLM judge against a local chat-completions stub that takes 0.2 s per call with one
model slot per replica, so one replica serves about 5 calls/s; 8 closed-loop clients queue up behind it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import threading
import time
from pathlib import Path

APP = "judges_autoscale_test"
ITEM = {"query": "2+2?", "response": "4"}

# the chat-completions stub lives in tests/judges/conftest.py; load it by path (pytest uses importlib mode)
_spec = importlib.util.spec_from_file_location(
    "judges_stub_for_autoscaling", Path(__file__).parents[1] / "judges" / "conftest.py"
)
_stub = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_stub)


def running_replicas(deployment: str) -> int:
    from ray import serve

    app = serve.status().applications.get(APP)
    if app is None or deployment not in app.deployments:
        return 0
    return int(app.deployments[deployment].replica_states.get("RUNNING", 0))


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@contextlib.contextmanager
def closed_loop_load(handle, clients: int):
    stop = threading.Event()
    done = [0]

    def loop():
        while not stop.is_set():
            handle.score_items.remote([ITEM]).result(timeout_s=60)
            done[0] += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield done
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)


def test_adaptive_policy_scales_up_under_load_and_down_after(ray_session):
    from ray import serve

    from dspy_rl.judges.app import deploy
    from dspy_rl.judges.config import JudgeSpec, ServeConfig

    with _stub.stub_server() as (url, stub):
        stub.delay_s = 0.2
        cfg = ServeConfig(
            port=_stub.free_port(),
            app_name=APP,
            deadline_s=30.0,
            autoscaling="adaptive",
            upscale_delay_s=0.5,
            downscale_delay_s=2.0,
            look_back_period_s=1.0,
            metrics_interval_s=0.25,
            control={
                "mode": "aimd",
                "base_limit": 2,
                "max_limit": 8,
                "queue_high_watermark": 2.0,
                "decrease_step": 0.5,
                "adaptation_interval": 0.5,
            },
            judges={
                "llm": JudgeSpec(
                    kind="llm",
                    num_cpus=0,
                    min_replicas=1,
                    max_replicas=3,
                    max_ongoing_requests=2,
                    model_concurrency=1,
                    options={"base_url": url, "model": "stub", "timeout_s": 30.0},
                ),
            },
        )
        try:
            handle = deploy(cfg)
            assert running_replicas("judge_llm") == 1
            with closed_loop_load(handle, clients=8) as done:
                wait_for(
                    lambda: running_replicas("judge_llm") >= 2, 60, "scale-up to >= 2 replicas under load"
                )
            assert done[0] > 0
            wait_for(lambda: running_replicas("judge_llm") == 1, 60, "scale-down to 1 replica after the load")
        finally:
            serve.delete(APP)
            serve.shutdown()
