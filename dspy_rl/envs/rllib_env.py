"""RLlib adapter (new API stack, Ray 2.60): ToolEnv as a ``MultiAgentEnv`` with agents/policies A, B and C.

Turn structure, as RLlib's new stack wants it (only agents that act next appear in the observation dict):
  * reset: observations for ``A`` (first tool) and ``C`` (argument);
  * every later step: observations for ``B`` (next tool) and ``C``;
  * the step that ends the episode: observations for ``A``, ``B`` and ``C`` (RLlib requires a last observation
    for every agent that acted; the batched core auto-resets, so this is the next episode's first state and only
    matters for value bootstrapping at truncation) and ``terminated``/``truncated`` for all, ``"__all__"`` included.
Rewards (team reward r_t of the env step): ``C`` and the tool agent that acted get r_t; ``A`` also gets r_t at
every later step, which RLlib accumulates onto A's single transition, so A's first-tool action is credited with
the whole (undiscounted) episode return. RLlib's ``episode_return_mean`` therefore sums three agents; the env's
own return is ``agent_episode_return_mean/C``.

Spaces per agent (``action_masks=True``, default): observation ``Dict({"observations": Box(0, 1, (obs_dim,)),
"action_mask": Box(0, 1, (n,))})``, action ``Discrete(n)`` with ``n = num_tools`` for A/B and ``num_args`` for C:
the layout of RLlib's action-masking RLModule (:func:`masked_ppo_module_spec`). With ``action_masks=False`` the
observation is the plain Box and masked actions are scored by ``invalid_action="penalty"`` (the default).

Two ways to run it:
  * ``config.environment(ENV_NAME, env_config={...})``: one :class:`ToolMultiAgentEnv` (a ``VecToolEnv`` of one
    env) per RLlib sub-env; RLlib's ``SyncVectorMultiAgentEnv`` steps ``num_envs_per_env_runner`` of them one by one.
  * vectorized, :func:`use_vectorized_runner`: :class:`ToolEnvRunner` builds one
    :class:`ToolVectorMultiAgentEnv`, which steps all ``num_envs_per_env_runner`` envs in ONE batched VecToolEnv
    call, following RLlib's "next_step" autoreset protocol (an env whose episode ended sits out one step: it is
    snapshotted before the batched step and restored after it).

``env_config`` keys: ``suite`` (default "default"), ``seed`` (0; env runner ``w`` uses ``seed + 1000 * w``),
``backend`` ("auto"), ``invalid_action`` ("penalty"), ``episode_len`` (None), ``action_masks`` (True),
``num_threads`` (1, Rust threads inside one VecToolEnv).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.multi_agent_env import MultiAgentEnv
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv
from ray.tune.registry import register_env

from dspy_rl.envs import VecEnv
from dspy_rl.envs.gym_env import make_vec_env

ENV_NAME = "dspy_rl_tool_env"
AGENTS = ("A", "B", "C")
CONFIG_KEYS = ("suite", "seed", "backend", "invalid_action", "episode_len", "action_masks", "num_threads")


def policy_mapping_fn(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """Agent ids are the policy (module) ids: A -> A, B -> B, C -> C."""
    return agent_id


def _build_vec(config: Mapping[str, Any] | None, num_envs: int) -> tuple[VecEnv, bool]:
    """The VecToolEnv for an env_config (validated); returns it and the ``action_masks`` flag."""
    worker = int(getattr(config, "worker_index", 0) or 0)
    config = dict(config or {})
    unknown = set(config) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown env_config keys {sorted(unknown)}; allowed: {list(CONFIG_KEYS)}")
    seed = int(config.get("seed", 0)) + 1000 * worker
    vec = make_vec_env(
        num_envs,
        suite=config.get("suite", "default"),
        seed=seed,
        backend=config.get("backend", "auto"),
        invalid_action=config.get("invalid_action", "penalty"),
        episode_len=config.get("episode_len"),
        num_threads=int(config.get("num_threads", 1)),
    )
    return vec, bool(config.get("action_masks", True))


class _Codec:
    """Turns rows of the VecToolEnv's buffers into RLlib's per-agent dicts (shared by both env classes)."""

    def __init__(self, vec: VecEnv, action_masks: bool) -> None:
        self.vec, self.action_masks = vec, action_masks
        sizes = {"A": vec.num_tools, "B": vec.num_tools, "C": vec.num_args}
        box = gym.spaces.Box(0.0, 1.0, (vec.obs_dim,), np.float32)
        if action_masks:
            self.observation_spaces = {
                a: gym.spaces.Dict(
                    {"observations": box, "action_mask": gym.spaces.Box(0.0, 1.0, (n,), np.float32)}
                )
                for a, n in sizes.items()
            }
        else:
            self.observation_spaces = dict.fromkeys(AGENTS, box)
        self.action_spaces = {a: gym.spaces.Discrete(n) for a, n in sizes.items()}

    def observations(self, i: int, agents: tuple[str, ...]) -> dict[str, Any]:
        v = self.vec
        obs = v.obs[i].copy()
        if not self.action_masks:
            return dict.fromkeys(agents, obs)
        tool_mask = v.tool_mask[i].astype(np.float32)
        arg_mask = v.arg_mask[i].astype(np.float32)
        return {a: {"observations": obs, "action_mask": arg_mask if a == "C" else tool_mask} for a in agents}

    @staticmethod
    def tool_agent(phase: int) -> str:
        return "A" if phase == 0 else "B"

    def actions_of(self, i: int, action_dict: Mapping[str, Any], phase: int) -> tuple[int, int]:
        tool_agent = self.tool_agent(phase)
        try:
            return int(action_dict[tool_agent]), int(action_dict["C"])
        except KeyError as exc:
            raise KeyError(
                f"env {i}: missing action for agent {exc.args[0]!r}; this step needs {tool_agent!r} and 'C' "
                f"(got actions for {sorted(action_dict)})"
            ) from None

    def step_result(self, i: int, phase_before: int) -> tuple[dict, dict, dict, dict, bool]:
        """(observations, rewards, terminateds, truncateds, ended) of env ``i`` after a batched step."""
        v = self.vec
        r = float(v.rewards[i])
        tool_agent = self.tool_agent(phase_before)
        rewards = {"C": r, tool_agent: r}
        if tool_agent == "B":
            rewards["A"] = r  # accumulates onto A's pending first-step transition
        term, trunc = bool(v.terminated[i]), bool(v.truncated[i])
        if term or trunc:
            obs = self.observations(i, AGENTS)
            terms = {a: term for a in AGENTS}
            truncs = {a: trunc for a in AGENTS}
            terms["__all__"], truncs["__all__"] = term, trunc
            return obs, rewards, terms, truncs, True
        return self.observations(i, ("B", "C")), rewards, {"__all__": False}, {"__all__": False}, False


class ToolMultiAgentEnv(MultiAgentEnv):
    """One ToolEnv episode with agents A, B, C (see the module docstring); registered as :data:`ENV_NAME`."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.vec, action_masks = _build_vec(config, 1)
        self._codec = _Codec(self.vec, action_masks)
        self.possible_agents = list(AGENTS)
        self.agents = list(AGENTS)
        self.observation_spaces = self._codec.observation_spaces
        self.action_spaces = self._codec.action_spaces
        self._tools = np.zeros(1, dtype=np.int64)
        self._args = np.zeros(1, dtype=np.int64)
        self._fresh = (
            True  # the core sits at an episode start nobody has acted in (after construction/auto-reset)
        )

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed is not None:
            self.vec.reset(seed)
        elif not self._fresh:
            self.vec.reset(None)
        self._fresh = False
        return self._codec.observations(0, ("A", "C")), {}

    def step(self, action_dict: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        phase = int(self.vec.phase[0])
        self._tools[0], self._args[0] = self._codec.actions_of(0, action_dict, phase)
        self.vec.step(self._tools, self._args)
        obs, rewards, terms, truncs, ended = self._codec.step_result(0, phase)
        self._fresh = ended
        return obs, rewards, terms, truncs, {}


class _SpacesOnly(MultiAgentEnv):
    """Stands in for a sub-env in ``ToolVectorMultiAgentEnv.envs``: RLlib reads spaces and agent ids from it."""

    def __init__(self, codec: _Codec) -> None:
        super().__init__()
        self.possible_agents = list(AGENTS)
        self.agents = list(AGENTS)
        self.observation_spaces = codec.observation_spaces
        self.action_spaces = codec.action_spaces

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> Any:
        raise NotImplementedError("sub-envs of ToolVectorMultiAgentEnv are stepped by the vector env")

    def step(self, action_dict: dict[str, Any]) -> Any:
        raise NotImplementedError("sub-envs of ToolVectorMultiAgentEnv are stepped by the vector env")


class ToolVectorMultiAgentEnv(VectorMultiAgentEnv):
    """``num_envs`` ToolEnv episodes stepped by one batched VecToolEnv call, in RLlib's vector-env protocol."""

    def __init__(self, config: Mapping[str, Any] | None, num_envs: int) -> None:
        super().__init__()
        self.vec, action_masks = _build_vec(config, num_envs)
        self._codec = _Codec(self.vec, action_masks)
        self.num_envs = num_envs
        spec = _SpacesOnly(self._codec)
        self.envs = [spec] * num_envs
        self.single_observation_spaces = self._codec.observation_spaces
        self.single_action_spaces = self._codec.action_spaces
        self.single_observation_space = gym.spaces.Dict(self.single_observation_spaces)
        self.single_action_space = gym.spaces.Dict(self.single_action_spaces)
        self.metadata = {"autoreset_mode": "next_step"}
        self._tools = np.zeros(num_envs, dtype=np.int64)
        self._args = np.zeros(num_envs, dtype=np.int64)
        self._autoreset = np.zeros(
            num_envs, dtype=bool
        )  # ended at the last step: hands out its reset next step
        self._fresh = True

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[list, list]:
        super().reset(seed=seed)
        if seed is not None:
            self.vec.reset(seed)
        elif not self._fresh:
            self.vec.reset(None)
        self._fresh = False
        self._autoreset[:] = False
        return [self._codec.observations(i, ("A", "C")) for i in range(self.num_envs)], [{}] * self.num_envs

    def step(self, actions: list[dict[str, Any]]) -> tuple[list, list, list, list, list]:
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} action dicts (one per sub-env), got {len(actions)}")
        v = self.vec
        phase = v.phase.copy()
        idle = np.flatnonzero(self._autoreset)
        for i in range(self.num_envs):
            if not self._autoreset[i]:
                self._tools[i], self._args[i] = self._codec.actions_of(i, actions[i], int(phase[i]))
        # Envs that hand out their reset observation this step must not advance: any valid action, then restore.
        states = [v.snapshot(int(i)) for i in idle]
        if idle.size:
            self._tools[idle] = v.tool_mask[idle].argmax(axis=1)
            self._args[idle] = 0
        v.step(self._tools, self._args)
        for i, state in zip(idle, states, strict=True):
            v.restore(int(i), state)
        obs, rewards, terms, truncs = [], [], [], []
        for i in range(self.num_envs):
            if self._autoreset[i]:
                obs.append(self._codec.observations(i, ("A", "C")))
                rewards.append({})
                terms.append({"__all__": False})
                truncs.append({"__all__": False})
                self._autoreset[i] = False
                continue
            o, r, te, tr, ended = self._codec.step_result(i, int(phase[i]))
            obs.append(o)
            rewards.append(r)
            terms.append(te)
            truncs.append(tr)
            self._autoreset[i] = ended
        return obs, rewards, terms, truncs, [{}] * self.num_envs


class ToolEnvRunner(MultiAgentEnvRunner):
    """A ``MultiAgentEnvRunner`` whose env is one :class:`ToolVectorMultiAgentEnv` (batched stepping)."""

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        env_ctx = self.config.env_config
        if not isinstance(env_ctx, EnvContext):
            env_ctx = EnvContext(
                env_ctx,
                worker_index=self.worker_index,
                num_workers=self.config.num_env_runners,
                remote=self.config.remote_worker_envs,
            )
        self.env = ToolVectorMultiAgentEnv(env_ctx, self.config.num_envs_per_env_runner)
        self.num_envs = self.env.num_envs
        self._needs_initial_reset = True
        make_callback(
            "on_environment_created",
            callbacks_objects=self._callbacks,
            callbacks_functions=self.config.callbacks_on_environment_created,
            kwargs=dict(
                env_runner=self, metrics_logger=self.metrics, env=self.env.unwrapped, env_context=env_ctx
            ),
        )


def masked_ppo_module_spec(hidden: tuple[int, ...] = (64, 64)) -> Any:
    """A ``MultiRLModuleSpec`` with one action-masking PPO module per policy (needs ``action_masks=True``)."""
    from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule

    return MultiRLModuleSpec(
        rl_module_specs={
            p: RLModuleSpec(
                module_class=ActionMaskingTorchRLModule, model_config={"fcnet_hiddens": list(hidden)}
            )
            for p in AGENTS
        }
    )


def configure(
    config: AlgorithmConfig,
    env_config: Mapping[str, Any] | None = None,
    num_envs_per_env_runner: int = 1,
    vectorized: bool = True,
    hidden: tuple[int, ...] = (64, 64),
) -> AlgorithmConfig:
    """Point an RLlib (PPO) config at ToolEnv: env, the A/B/C policies, masking modules, batched env runner."""
    env_config = dict(env_config or {})
    # RLlib's env checker steps random, unmasked actions, which invalid_action="error" rightly rejects.
    strict = env_config.get("invalid_action", "penalty") == "error"
    config = config.environment(ENV_NAME, env_config=env_config, disable_env_checking=strict).multi_agent(
        policies=set(AGENTS), policy_mapping_fn=policy_mapping_fn
    )
    if env_config.get("action_masks", True):
        config = config.rl_module(rl_module_spec=masked_ppo_module_spec(hidden))
    if vectorized:
        return config.env_runners(
            env_runner_cls=ToolEnvRunner, num_envs_per_env_runner=num_envs_per_env_runner
        )
    return config.env_runners(num_envs_per_env_runner=num_envs_per_env_runner)


def _create(config: EnvContext | Mapping[str, Any]) -> ToolMultiAgentEnv:
    return ToolMultiAgentEnv(config)


register_env(ENV_NAME, _create)

__all__ = [
    "AGENTS",
    "ENV_NAME",
    "ToolEnvRunner",
    "ToolMultiAgentEnv",
    "ToolVectorMultiAgentEnv",
    "configure",
    "masked_ppo_module_spec",
    "policy_mapping_fn",
]
