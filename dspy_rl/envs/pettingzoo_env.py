"""PettingZoo adapter: one ToolEnv episode as a ``ParallelEnv`` with the three policies as agents.

Agents (``possible_agents``): ``"A"`` picks the tool at the episode's first step, ``"B"`` picks the tool at every
later step, ``"C"`` picks the argument at every step (envs/README.md, "Observation").

How A and B fit the parallel API: all three agents are live for the whole episode and step together, but only
one tool agent acts at a time. The inactive one (B at the first step, A afterwards) gets an ``action_mask`` that
allows exactly action 0, a no-op: its action is ignored (it may also be left out of the action dict), and
``infos[agent]["active"]`` is False. A masked policy therefore samples it with probability 1 (log-prob 0, no
gradient), so a standard masked PPO over this env trains A only on the first step and B only on later steps
without any special casing. The reward is a team reward: every agent receives the env's step reward at every
step. With that, A's first action is credited with the whole episode's return through A's value function (its
later, forced steps carry the return back), which is the objective A has in our trainer.

Spaces (per agent): observation ``Dict({"observation": Box(0, 1, (obs_dim,), float32), "action_mask":
MultiBinary(n)})`` and action ``Discrete(n)``, with ``n = num_tools`` for A and B and ``n = num_args`` for C.

Invalid actions: ``invalid_action="penalty"`` by default (see :mod:`dspy_rl.envs.gym_env`), ``"error"`` raises.
Episode ends: all agents terminate/truncate together; as in the Gymnasium adapter the observations returned with
the last step belong to the next (auto-reset) episode, which the next ``reset()`` without a seed continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from dspy_rl.envs.gym_env import RESULT_NAMES, make_vec_env

AGENTS = ("A", "B", "C")


class ToolParallelEnv(ParallelEnv):
    """Multi-agent (A: first tool, B: next tools, C: argument) view of one ToolEnv, backed by ``VecToolEnv(1)``.

    Args:
        suite: suite name or path to a suite JSON file.
        seed: seed used until ``reset(seed=...)`` gives another one.
        backend: ``"auto"`` (Rust if built, else Python), ``"rust"`` or ``"python"``.
        invalid_action: ``"penalty"`` (default) or ``"error"``.
        episode_len: steps before truncation; ``None`` keeps the suite's value.
    """

    metadata: dict[str, Any] = {"name": "dspy_rl_tool_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        suite: str | Path = "default",
        seed: int = 0,
        backend: str = "auto",
        invalid_action: str = "penalty",
        episode_len: int | None = None,
    ) -> None:
        self.vec = make_vec_env(1, suite, seed, backend, invalid_action, episode_len)
        v = self.vec
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        self.render_mode = None
        sizes = {"A": v.num_tools, "B": v.num_tools, "C": v.num_args}
        obs_box = spaces.Box(0.0, 1.0, (v.obs_dim,), np.float32)
        self.observation_spaces = {
            a: spaces.Dict({"observation": obs_box, "action_mask": spaces.MultiBinary(n)}, seed=seed)
            for a, n in sizes.items()
        }
        self.action_spaces = {a: spaces.Discrete(n, seed=seed) for a, n in sizes.items()}
        self._noop_mask = np.zeros(v.num_tools, dtype=np.int8)
        self._noop_mask[0] = 1
        self._tools = np.zeros(1, dtype=np.int64)
        self._args = np.zeros(1, dtype=np.int64)
        self._fresh = True  # at an episode start no one has acted in yet (see ToolGymEnv)

    def observation_space(self, agent: str) -> spaces.Space:
        # The same object on every call (PettingZoo's API test checks it; space seeding relies on it).
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _active_tool_agent(self) -> str:
        return "A" if self.vec.phase[0] == 0 else "B"

    def _observations(self) -> dict[str, dict[str, np.ndarray]]:
        obs = self.vec.obs[0].copy()
        tool_mask = self.vec.tool_mask[0].astype(np.int8)
        active = self._active_tool_agent()
        return {
            "A": {"observation": obs, "action_mask": tool_mask if active == "A" else self._noop_mask.copy()},
            "B": {"observation": obs, "action_mask": tool_mask if active == "B" else self._noop_mask.copy()},
            "C": {"observation": obs, "action_mask": self.vec.arg_mask[0].astype(np.int8)},
        }

    def _infos(self, acted: tuple[str, ...] = (), episode_over: bool = False) -> dict[str, dict[str, Any]]:
        """``active``: the agent's action is used at the next step; ``acted``: it was used at the last one."""
        active = () if episode_over else (self._active_tool_agent(), "C")
        result = RESULT_NAMES[int(self.vec.results[0])]
        return {
            a: {"active": a in active, "acted": a in acted, "phase": int(self.vec.phase[0]), "result": result}
            for a in AGENTS
        }

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        if seed is not None:
            for space in (*self.observation_spaces.values(), *self.action_spaces.values()):
                space.seed(seed)
            self.vec.reset(seed)
        elif not self._fresh:
            self.vec.reset(None)
        self._fresh = False
        self.agents = list(AGENTS)
        return self._observations(), self._infos()

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        if not self.agents:
            raise RuntimeError("the episode is over: call reset() before step()")
        tool_agent = self._active_tool_agent()
        for agent in (tool_agent, "C"):
            if agent not in actions:
                raise KeyError(
                    f"missing action for agent {agent!r}: this step needs {tool_agent!r} (tool) and 'C' (argument)"
                )
        unknown = set(actions) - set(AGENTS)
        if unknown:
            raise KeyError(f"unknown agents {sorted(unknown)}; agents are {list(AGENTS)}")
        self._tools[0] = _as_index(actions[tool_agent], tool_agent)
        self._args[0] = _as_index(actions["C"], "C")
        self.vec.step(self._tools, self._args)
        v = self.vec
        reward = float(v.rewards[0])
        terminated, truncated = bool(v.terminated[0]), bool(v.truncated[0])
        infos = self._infos(acted=(tool_agent, "C"), episode_over=terminated or truncated)
        if terminated or truncated:
            episode = {
                "episode_return": float(v.episode_return[0]),
                "episode_length": int(v.episode_length[0]),
                "is_success": bool(v.episode_success[0]),
            }
            for info in infos.values():
                info.update(episode)
            self._fresh = True
        observations = self._observations()
        rewards = dict.fromkeys(AGENTS, reward)
        terminations = dict.fromkeys(AGENTS, terminated)
        truncations = dict.fromkeys(AGENTS, truncated)
        if terminated or truncated:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        """The shared observation (the env is fully observed by every agent)."""
        return self.vec.obs[0].copy()

    def close(self) -> None:
        self.agents = []


def _as_index(action: Any, agent: str) -> int:
    value = np.asarray(action)
    if value.ndim != 0 or not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"action of agent {agent!r} must be one integer (Discrete), got {action!r}")
    return int(value)
