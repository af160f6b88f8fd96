"""A tool allow-list over any VecEnv backend (``env.actions``): tools not listed are masked out after every reset,
step and restore, and a pick of one of them is refused before it reaches the backend.

A name selects the tool of that name and the family ``<name>_*`` (``git`` selects ``git_status``, ``git_diff``,
``git_commit``). In a state where none of the allowed tools is valid, that env's row keeps the backend's own mask
(the episode must be able to move on); :attr:`AllowListVecEnv.relaxed_steps` counts those rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dspy_rl.config import ConfigError


def parse_actions(actions: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"git,make,pytest"`` or a list of names -> the names, stripped, empty ones dropped."""
    items = actions.split(",") if isinstance(actions, str) else list(actions)
    return [a.strip() for a in items if a.strip()]


def allowed_tools(tool_names: list[str], actions: str | list[str] | tuple[str, ...]) -> np.ndarray:
    """Boolean mask over ``tool_names``; ConfigError (one line) for a name that selects no tool."""
    names = parse_actions(actions)
    if not names:
        raise ConfigError("env.actions names no tool: pass a comma-separated list such as git,make,pytest")
    mask = np.zeros(len(tool_names), dtype=bool)
    for name in names:
        hits = [i for i, t in enumerate(tool_names) if t == name or t.startswith(f"{name}_")]
        if not hits:
            raise ConfigError(
                f"env.actions: {name!r} is not a tool of this suite; tools: {', '.join(tool_names)}"
            )
        mask[hits] = True
    return mask


class AllowListVecEnv:
    """Wraps a VecEnv (Rust or Python backend); everything not overridden here is the backend's."""

    def __init__(self, env: Any, actions: str | list[str] | tuple[str, ...]) -> None:
        self._env = env
        self.allowed = allowed_tools(list(env.tool_names), actions)
        self.relaxed_steps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def _apply(self, rows: slice | int = slice(None)) -> None:
        mask = self._env.tool_mask
        restricted = mask[rows] & self.allowed
        empty = ~restricted.any(axis=-1)
        if np.any(empty):
            self.relaxed_steps += int(np.sum(empty))
            restricted[empty] = mask[rows][empty]
        mask[rows] = restricted

    def reset(self, seed: int | None = None) -> None:
        self._env.reset(seed)
        self._apply()

    def step(self, tools: np.ndarray, args: np.ndarray) -> None:
        tools = np.asarray(tools)
        picked = self._env.tool_mask[np.arange(len(tools)), tools]
        if not np.all(picked):
            bad = int(np.flatnonzero(~picked)[0])
            name = self._env.tool_names[int(tools[bad])]
            raise ValueError(f"env {bad} picked tool {name!r}, which env.actions or the state masks out")
        self._env.step(tools, args)
        self._apply()

    def restore(self, i: int, state: bytes) -> None:
        self._env.restore(i, state)
        self._apply(i)
