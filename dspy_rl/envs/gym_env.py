"""Gymnasium adapter: one ToolEnv episode as a single-agent ``gymnasium.Env``.

One policy controls both the tool and its argument (policies A, B and C of the multi-agent view collapse into
one), so the action is ``MultiDiscrete([num_tools, num_args])``: ``action[0]`` is the tool, ``action[1]`` the
argument (ignored by tools that take none, but it must still be a valid candidate).

Observation: ``Dict({"observation": Box(0, 1, (obs_dim,), float32), "action_mask": MultiBinary(num_tools +
num_args)})``. ``action_mask`` is the tool mask followed by the argument mask, the flattened layout that maskable
PPO implementations use for ``MultiDiscrete`` (e.g. sb3-contrib's ``MaskablePPO``, which calls
:meth:`ToolGymEnv.action_masks`); the ``"observation"``/``"action_mask"`` keys are the convention of PettingZoo and
RLlib's action-masking examples. The phase (first step or later) and the last tool and result are encoded in
``"observation"`` (see envs/README.md).

Invalid actions: by default ``invalid_action="penalty"`` (a masked tool or an argument outside the task's
candidates costs the suite's invalid penalty, changes nothing and ends in result 4), because Gymnasium users and
``check_env`` sample unmasked actions; ``"error"`` raises ``ValueError`` instead.

Episode ends: the batched core auto-resets, so no final observation exists. The observation returned together
with ``terminated``/``truncated`` is the first observation of the next episode, and the following ``reset()``
(without a seed) continues from exactly that state instead of drawing another task. Value bootstrapping on
``truncated`` therefore sees a start state; treat truncation as terminal or ignore that step's bootstrap.

Registered with Gymnasium as ``"dspy_rl/ToolEnv-v0"`` when this module is imported; from a fresh process use
``gymnasium.make("dspy_rl.envs.gym_env:dspy_rl/ToolEnv-v0", suite="easy")``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from dspy_rl.envs import BACKENDS, VecEnv, VecToolEnv, rust_available

logger = logging.getLogger(__name__)

ENV_ID = "dspy_rl/ToolEnv-v0"
#: Backend names the adapters accept: the VecToolEnv backends plus "auto" (Rust when built, else Python).
ADAPTER_BACKENDS = ("auto", *BACKENDS)
#: Names of the step results in ``env.results`` (index = result code).
RESULT_NAMES = ("none", "success", "failure", "empty", "invalid")


def resolve_backend(backend: str) -> str:
    """Map ``"auto"`` to ``"rust"`` when ``dspy_rl._rust_env`` is built, else ``"python"``; validate the name."""
    if backend not in ADAPTER_BACKENDS:
        raise ValueError(f"backend must be one of {ADAPTER_BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = "rust" if rust_available() else "python"
        if backend == "python":
            logger.debug("dspy_rl._rust_env is not built; using the pure-Python ToolEnv reference")
    return backend


def make_vec_env(
    num_envs: int,
    suite: str | Path = "default",
    seed: int = 0,
    backend: str = "auto",
    invalid_action: str = "penalty",
    episode_len: int | None = None,
    num_threads: int = 1,
) -> VecEnv:
    """Build the batched ToolEnv an adapter wraps (``backend="auto"`` prefers the Rust core)."""
    return VecToolEnv(
        num_envs=num_envs,
        suite=suite,
        seed=seed,
        num_threads=num_threads,
        invalid_action=invalid_action,
        episode_len=episode_len,
        backend=resolve_backend(backend),
    )


class ToolGymEnv(gym.Env[dict[str, np.ndarray], np.ndarray]):
    """Single-agent Gymnasium view of ToolEnv, backed by a ``VecToolEnv`` with ``num_envs=1``.

    Args:
        suite: suite name (``easy``, ``default``, ``hard``) or path to a suite JSON file.
        seed: seed used until ``reset(seed=...)`` gives another one.
        backend: ``"auto"`` (Rust if built, else Python), ``"rust"`` or ``"python"``.
        invalid_action: ``"penalty"`` (default) or ``"error"``; see the module docstring.
        episode_len: steps before truncation; ``None`` keeps the suite's value.
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        suite: str | Path = "default",
        seed: int = 0,
        backend: str = "auto",
        invalid_action: str = "penalty",
        episode_len: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.vec = make_vec_env(1, suite, seed, backend, invalid_action, episode_len)
        v = self.vec
        self.num_tools, self.num_args = v.num_tools, v.num_args
        self.action_space = spaces.MultiDiscrete([v.num_tools, v.num_args], seed=seed)
        self.observation_space = spaces.Dict(
            {
                "observation": spaces.Box(0.0, 1.0, (v.obs_dim,), np.float32),
                "action_mask": spaces.MultiBinary(v.num_tools + v.num_args),
            },
            seed=seed,
        )
        self._tools = np.zeros(1, dtype=np.int64)
        self._args = np.zeros(1, dtype=np.int64)
        # True while the core sits at the first state of an episode nobody has acted in yet (after construction or
        # an auto-reset), so reset() without a seed can hand it out instead of discarding it.
        self._fresh = True

    # -- helpers ------------------------------------------------------------------------------------------------

    def _obs(self) -> dict[str, np.ndarray]:
        mask = np.concatenate([self.vec.tool_mask[0], self.vec.arg_mask[0]]).astype(np.int8)
        return {"observation": self.vec.obs[0].copy(), "action_mask": mask}

    def _info(self) -> dict[str, Any]:
        return {"phase": int(self.vec.phase[0]), "result": RESULT_NAMES[int(self.vec.results[0])]}

    def action_masks(self) -> np.ndarray:
        """Valid tools then valid arguments as one bool vector (the ``MaskablePPO`` convention)."""
        return np.concatenate([self.vec.tool_mask[0], self.vec.arg_mask[0]])

    # -- gymnasium API ------------------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
            self.observation_space.seed(seed)
            self.vec.reset(seed)
        elif not self._fresh:
            self.vec.reset(None)
        self._fresh = False
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        act = np.asarray(action)
        if act.shape != (2,) or not np.issubdtype(act.dtype, np.integer):
            raise ValueError(
                f"action must be two integers (tool, argument) like action_space.sample(), got {action!r}"
            )
        self._tools[0], self._args[0] = act[0], act[1]
        self.vec.step(self._tools, self._args)
        v = self.vec
        terminated, truncated = bool(v.terminated[0]), bool(v.truncated[0])
        info = self._info()
        if terminated or truncated:
            info["episode_return"] = float(v.episode_return[0])
            info["episode_length"] = int(v.episode_length[0])
            info["is_success"] = bool(v.episode_success[0])
            self._fresh = True
        return self._obs(), float(v.rewards[0]), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        valid = [n for n, ok in zip(self.vec.tool_names, self.vec.tool_mask[0], strict=True) if ok]
        return f"phase={int(self.vec.phase[0])} last_result={self._info()['result']} valid_tools={valid}"


if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point=ToolGymEnv)
