"""Fixtures for the ToolEnv tests: the Rust backend is required (built by `maturin develop --release`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dspy_rl.envs import BUFFER_NAMES, rust_available


@pytest.fixture(autouse=True)
def _require_rust_backend() -> None:
    if not rust_available():
        pytest.skip("dspy_rl._rust_env is not built: run `maturin develop --release` (make setup)")


def _assert_same_outputs(a, b, context: str = "") -> None:
    for name in BUFFER_NAMES:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{name} dtype/shape differ {context}"
        if not np.array_equal(x, y):
            rows = np.flatnonzero((x != y).reshape(len(x), -1).any(axis=1))
            raise AssertionError(f"{name} differs {context} at envs {rows[:10].tolist()}")


@pytest.fixture
def same_outputs() -> Callable[..., None]:
    """``same_outputs(env_a, env_b, context)``: assert every output buffer is bit-identical."""
    return _assert_same_outputs


@pytest.fixture
def copy_outputs() -> Callable[..., dict[str, np.ndarray]]:
    """``copy_outputs(env)``: copies of every output buffer."""
    return lambda env: {name: getattr(env, name).copy() for name in BUFFER_NAMES}
