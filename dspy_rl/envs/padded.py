"""One observation and action layout for several suites: a VecToolEnv padded to the largest of them.

A curriculum (``easy -> default -> hard -> expert``) trains one set of policy networks on suites of different
sizes; their weights carry over from one suite to the next only if the networks' inputs and outputs keep their
shapes and meaning. :class:`PadSpec` is the largest number of facts, tools and argument candidates over the
suites; :class:`PaddedVecEnv` wraps a VecToolEnv and lays each segment of its observation (facts, goal facts,
last-tool one-hot, last-result one-hot, revealed target, step fraction; see ``envs/README.md``) at the start of
the same segment of the padded layout, with zeros in the padding. Padded tools and arguments are never allowed
by the masks, so a masked policy never picks them. Everything else (rewards, dones, snapshots, the oracle) is the
wrapped env's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dspy_rl.envs.suite import NUM_RESULTS, load_suite


@dataclass(frozen=True)
class PadSpec:
    """Sizes of the padded layout."""

    num_facts: int
    num_tools: int
    num_args: int

    @property
    def obs_dim(self) -> int:
        return 2 * self.num_facts + self.num_tools + 1 + NUM_RESULTS + self.num_args + 1

    @classmethod
    def of_suites(cls, suites: Sequence[str | Path]) -> PadSpec:
        """The smallest layout holding every suite (by name or path)."""
        loaded = [load_suite(s) for s in suites]
        return cls(
            max(len(s.facts) for s in loaded),
            max(len(s.tools) for s in loaded),
            max(s.num_args for s in loaded),
        )

    def to_dict(self) -> dict[str, int]:
        return {"num_facts": self.num_facts, "num_tools": self.num_tools, "num_args": self.num_args}


def obs_columns(num_facts: int, num_tools: int, num_args: int, pad: PadSpec) -> np.ndarray:
    """Column of the padded observation that each column of an unpadded one goes to."""
    if num_facts > pad.num_facts or num_tools > pad.num_tools or num_args > pad.num_args:
        raise ValueError(
            f"a suite with {num_facts} facts, {num_tools} tools and {num_args} arguments does not fit the padded "
            f"layout {pad.to_dict()}"
        )
    f, t, a = pad.num_facts, pad.num_tools, pad.num_args
    parts = [
        np.arange(num_facts),  # facts held
        f + np.arange(num_facts),  # goal facts
        2 * f + np.arange(num_tools + 1),  # last tool one-hot (0 = none)
        2 * f + t + 1 + np.arange(NUM_RESULTS),  # last result one-hot
        2 * f + t + 1 + NUM_RESULTS + np.arange(num_args),  # revealed target
        np.array([2 * f + t + 1 + NUM_RESULTS + a]),  # step fraction
    ]
    return np.concatenate(parts)


class PaddedVecEnv:
    """A VecToolEnv seen through a :class:`PadSpec` layout (see the module docstring)."""

    def __init__(self, env: Any, pad: PadSpec) -> None:
        self.env = env
        self.pad = pad
        num_facts = (env.obs_dim - env.num_tools - 1 - NUM_RESULTS - env.num_args - 1) // 2
        self._cols = obs_columns(num_facts, env.num_tools, env.num_args, pad)
        self._tools_real, self._args_real = env.num_tools, env.num_args
        n = env.num_envs
        self.num_envs = n
        self.num_tools, self.num_args, self.obs_dim = pad.num_tools, pad.num_args, pad.obs_dim
        self.tool_names = list(env.tool_names) + [f"<pad{i}>" for i in range(env.num_tools, pad.num_tools)]
        self.obs = np.zeros((n, pad.obs_dim), np.float32)
        self.tool_mask = np.zeros((n, pad.num_tools), bool)
        self.arg_mask = np.zeros((n, pad.num_args), bool)
        self._refresh()

    def __getattr__(
        self, name: str
    ) -> Any:  # phase, rewards, dones, episode stats, episode_len, suite_name, ...
        return getattr(self.env, name)

    def _refresh(self) -> None:
        self.obs[:, self._cols] = self.env.obs
        self.tool_mask[:, : self._tools_real] = self.env.tool_mask
        self.arg_mask[:, : self._args_real] = self.env.arg_mask

    def step(self, tools: np.ndarray, args: np.ndarray) -> None:
        self.env.step(tools, args)
        self._refresh()

    def reset(self, seed: int | None = None) -> None:
        self.env.reset(seed)
        self._refresh()

    def snapshot(self, i: int) -> bytes:
        return self.env.snapshot(i)

    def restore(self, i: int, state: bytes) -> None:
        self.env.restore(i, state)
        self._refresh()

    def oracle_actions(self) -> tuple[np.ndarray, np.ndarray]:
        return self.env.oracle_actions()
