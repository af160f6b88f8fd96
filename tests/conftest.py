"""Shared fixtures: one real local Ray instance per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray instance shared by every test that needs one (started on first use)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            num_cpus=4,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
    yield ray
    # Ray Serve tests may leave an app running; shut everything down at session end.
    try:
        from ray import serve

        serve.shutdown()
    except Exception:
        pass
    ray.shutdown()
