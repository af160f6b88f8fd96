"""ENV_CONTRACT.md states what both backends do: its buffer table names every buffer with the dtype and shape each
backend really has, and its method list names every method of the structural type."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from dspy_rl.envs import BUFFER_NAMES, VecEnv, VecToolEnv

CONTRACT = Path(__file__).resolve().parents[2] / "ENV_CONTRACT.md"


def _buffer_table() -> dict[str, tuple[str, str]]:
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \| (\([^)]*\)) \|", CONTRACT.read_text(), flags=re.M)
    return {name: (dtype, shape) for name, dtype, shape in rows}


@pytest.mark.parametrize("backend", ["rust", "python"])
def test_buffer_table_matches_the_backend(backend: str) -> None:
    table = _buffer_table()
    assert set(table) == set(BUFFER_NAMES)
    env = VecToolEnv(4, "easy", seed=0, backend=backend)
    sizes = {
        "num_envs": env.num_envs,
        "obs_dim": env.obs_dim,
        "num_tools": env.num_tools,
        "num_args": env.num_args,
    }
    for _ in range(3):
        env.step(*env.oracle_actions())
    for name, (dtype, shape) in table.items():
        buf = getattr(env, name)
        expected = tuple(sizes[d.strip()] for d in shape.strip("()").split(",") if d.strip())
        assert buf.dtype == np.dtype(dtype), (name, buf.dtype, dtype)
        assert buf.shape == expected, (name, buf.shape, expected)


def test_methods_and_attributes_are_listed() -> None:
    text = CONTRACT.read_text()
    methods = [m for m in vars(VecEnv) if not m.startswith("_") and callable(getattr(VecEnv, m))]
    assert methods and all(f"`{m}(" in text for m in methods), methods
    attrs = [a for a in VecEnv.__annotations__ if a not in BUFFER_NAMES]
    assert all(f"`{a}`" in text for a in attrs), attrs
