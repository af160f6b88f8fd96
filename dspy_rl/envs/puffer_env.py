"""PufferLib adapter: a native ``pufferlib.PufferEnv`` (PufferLib 3 interface) backed by one ``VecToolEnv``.

Each of the ``num_envs`` ToolEnv envs is one PufferLib "agent" row, as in PufferLib's own C (ocean) envs:
``num_agents == num_envs``, and the env writes PufferLib's buffers ``observations, rewards, terminals,
truncations, masks`` in place; ``actions`` has shape ``(num_envs, 2)``.

Spaces: ``single_action_space = MultiDiscrete([num_tools, num_args])`` (tool, argument);
``single_observation_space = Box(0, 1, (D,), float32)`` where ``D = obs_dim + num_tools + num_args`` by default:
the env observation followed by the tool mask and the argument mask as 0/1 floats (PufferLib policies have no
separate mask input, so the masks travel in the observation; :attr:`ToolPufferEnv.tool_mask` and
:attr:`ToolPufferEnv.arg_mask` also expose them as bool views). With ``masks_in_obs=False``, ``D = obs_dim``.

Zero copy: when the env owns its buffers (``buf=None``: native vectorization, ``pufferlib.vector.make(...,
backend=pufferlib.vector.PufferEnv)``), ``rewards``, ``terminals`` and ``truncations`` ARE the VecToolEnv's arrays
and, with ``masks_in_obs=False``, so is ``observations``; a step then copies nothing but the two action columns.
Under PufferLib's Serial/Multiprocessing backends the buffers are slices of the backend's (shared) arrays, so
each step copies the VecToolEnv outputs into them (a few hundred bytes per env).

Episodes auto-reset inside the core (no final observation); ``masks`` stay all True. Invalid actions:
``invalid_action="penalty"`` by default (PufferLib samples unmasked actions), ``"error"`` raises.
``infos`` is a list with one dict of means over the episodes that ended in the step (``episode_return``,
``episode_length``, ``success_rate``, ``episodes``), or empty when none ended.

PyPI's pufferlib 3.0.0 needs ``scripts/install_pufferlib.sh`` to install next to RLlib; without pufferlib this
module still imports, but building the env raises ImportError saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from dspy_rl.envs.gym_env import make_vec_env

try:
    import pufferlib

    PUFFERLIB_IMPORT_ERROR: ImportError | None = None
    _PufferEnvBase: type = pufferlib.PufferEnv
except ImportError as exc:  # pufferlib is optional: scripts/install_pufferlib.sh
    PUFFERLIB_IMPORT_ERROR = exc

    class _PufferEnvBase:  # type: ignore[no-redef]
        def __init__(self, buf: Any = None) -> None:
            raise ImportError(
                f"pufferlib is not installed ({PUFFERLIB_IMPORT_ERROR}); run scripts/install_pufferlib.sh in the "
                "project's virtualenv"
            )


class ToolPufferEnv(_PufferEnvBase):
    """``num_envs`` ToolEnv envs as one native PufferLib env (see the module docstring).

    Args:
        num_envs: envs in the underlying VecToolEnv (PufferLib's ``num_agents``).
        suite: suite name or path to a suite JSON file.
        seed: seed (PufferLib's vector backends pass ``seed + i`` to the ``i``-th env).
        backend: ``"auto"`` (Rust if built, else Python), ``"rust"`` or ``"python"``.
        invalid_action: ``"penalty"`` (default) or ``"error"``.
        episode_len: steps before truncation; ``None`` keeps the suite's value.
        num_threads: Rust threads inside the VecToolEnv (0 = all cores; PufferLib parallelizes across processes,
            so the default is 1).
        masks_in_obs: append the tool and argument masks to the observation.
        buf: buffers handed in by PufferLib's vector backends (``None``: use the VecToolEnv's own arrays).
    """

    def __init__(
        self,
        num_envs: int = 256,
        suite: str | Path = "default",
        seed: int | None = 0,
        backend: str = "auto",
        invalid_action: str = "penalty",
        episode_len: int | None = None,
        num_threads: int = 1,
        masks_in_obs: bool = True,
        buf: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.vec = make_vec_env(
            num_envs, suite, 0 if seed is None else seed, backend, invalid_action, episode_len, num_threads
        )
        v = self.vec
        self.num_agents = v.num_envs
        self.masks_in_obs = masks_in_obs
        obs_width = v.obs_dim + (v.num_tools + v.num_args if masks_in_obs else 0)
        self.single_observation_space = spaces.Box(0.0, 1.0, (obs_width,), np.float32)
        self.single_action_space = spaces.MultiDiscrete([v.num_tools, v.num_args])
        super().__init__(buf)  # validates the spaces, allocates (or adopts) the buffers
        self.owns_buffers = buf is None
        if self.owns_buffers:
            self.rewards, self.terminals, self.truncations = v.rewards, v.terminated, v.truncated
            if not masks_in_obs:
                self.observations = v.obs
        self._tools = np.zeros(v.num_envs, dtype=np.int32)
        self._args = np.zeros(v.num_envs, dtype=np.int32)
        self._obs_dim, self._tool_end = v.obs_dim, v.obs_dim + v.num_tools

    @property
    def tool_mask(self) -> np.ndarray:
        """Valid tools per env, ``(num_envs, num_tools)`` bool (a view of the VecToolEnv buffer)."""
        return self.vec.tool_mask

    @property
    def arg_mask(self) -> np.ndarray:
        """Valid argument candidates per env, ``(num_envs, num_args)`` bool (a view of the VecToolEnv buffer)."""
        return self.vec.arg_mask

    def _publish(self) -> None:
        """Bring PufferLib's buffers up to date with the VecToolEnv's (no-op for aliased ones)."""
        v = self.vec
        if self.masks_in_obs:
            self.observations[:, : self._obs_dim] = v.obs
            self.observations[:, self._obs_dim : self._tool_end] = v.tool_mask
            self.observations[:, self._tool_end :] = v.arg_mask
        elif not self.owns_buffers:
            self.observations[:] = v.obs
        if not self.owns_buffers:
            self.rewards[:] = v.rewards
            self.terminals[:] = v.terminated
            self.truncations[:] = v.truncated

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        self.vec.reset(seed)
        self._publish()
        return self.observations, []

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_agents, 2):
            raise ValueError(
                f"actions must have shape ({self.num_agents}, 2) (tool, argument per env), got {actions.shape}"
            )
        self._tools[:] = actions[:, 0]
        self._args[:] = actions[:, 1]
        self.vec.step(self._tools, self._args)
        self._publish()
        v = self.vec
        infos: list[dict[str, Any]] = []
        ended = v.terminated | v.truncated
        if ended.any():
            infos.append(
                {
                    "episode_return": float(v.episode_return[ended].mean()),
                    "episode_length": float(v.episode_length[ended].mean()),
                    "success_rate": float(v.episode_success[ended].mean()),
                    "episodes": int(ended.sum()),
                }
            )
        return self.observations, self.rewards, self.terminals, self.truncations, infos

    def close(self) -> None:
        """Nothing to release: the VecToolEnv holds no OS resources."""
