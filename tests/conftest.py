"""Shared fixtures: one real local Ray instance per test session."""

from __future__ import annotations

import os
import sys

import pytest

# Tests run the `dspy-rl` console script beside the interpreter (the virtualenv's bin/), also when pytest is
# started as .venv/bin/pytest without the virtualenv activated.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance shared by every test that needs one (started on first use)."""
    import ray

    from dspy_rl.utils.ray_local import init_ray

    init_ray(num_cpus=4, log_to_driver=False)  # local, listening on 127.0.0.1 only
    yield ray
    # Ray Serve tests may leave an app running; shut everything down at session end.
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()


@pytest.fixture(autouse=True)
def _torch_grad_mode_is_left_on():
    """Grad mode is thread-global state: a test (or library code) that switches it off would break every later
    training test in this process, far from the cause. Fail the test that left it off, and restore it."""
    yield
    torch = sys.modules.get("torch")
    if torch is not None and not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail("torch grad mode was left disabled (use torch.no_grad()/inference_mode() as a context)")
