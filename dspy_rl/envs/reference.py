"""Pure-Python + numpy reference of ToolEnv: the executable specification of the dynamics.

The Rust backend (``dspy_rl._rust_env.VecToolEnv``) implements exactly this, bit for bit: parity tests compare
the two on random action streams. Readability first; one Python loop over envs per step. The dynamics are
documented in ``envs/README.md``.

RNG: every env owns a SplitMix64 stream. Env ``i`` of a ``seed`` starts from ``mix(seed ^ mix(i + 1))`` (64-bit
wrapping arithmetic); ``next_u64`` adds the golden gamma and returns ``mix(state)``; a uniform float is
``(next_u64() >> 11) * 2**-53``. Draw order per env: at an episode start, the task (``next_u64() % num_tasks``)
then the target (``next_u64() % num_candidates``); in a step, one uniform only when a call reaches the flaky roll.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from dspy_rl.envs.suite import (
    MAX_EPISODE_LEN,
    NUM_RESULTS,
    RESULT_EMPTY,
    RESULT_FAILURE,
    RESULT_INVALID,
    RESULT_NONE,
    RESULT_SUCCESS,
    Suite,
    load_suite,
)

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
TWO_POW_MINUS_53 = 1.0 / 9007199254740992.0
SNAPSHOT_MAGIC = b"TEV1"
# magic, num_tools, num_tasks, episode_len, rng, facts, task, target, t, last_tool (0 = none), last_result, return
SNAPSHOT_FORMAT = struct.Struct("<4sIIIQQIIIIBd")
INVALID_ACTION_MODES = ("error", "penalty")
F32_MAX = float(np.finfo(np.float32).max)


def mix64(z: int) -> int:
    """SplitMix64 output function (a bijection on 64-bit integers)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_stream(seed: int, index: int) -> int:
    """Initial SplitMix64 state of env ``index`` for ``seed`` (seed taken modulo 2**64)."""
    return mix64((seed & MASK64) ^ mix64((index + 1) & MASK64))


def check_seed(seed: object) -> int:
    """Validate a seed: a non-negative integer below 2**64."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) <= MASK64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


#: Most envs one VecToolEnv holds, and most threads it starts (the Rust backend and the config use the same).
MAX_NUM_ENVS = 1 << 20
MAX_THREADS = 1024


def check_actions(values: object, num_envs: int, name: str) -> list[int]:
    """Validate an action array (int32/int64 numpy array of shape (num_envs,)) and return it as a list."""
    if not isinstance(values, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy array of int32 or int64 with shape ({num_envs},), got {type(values).__name__}"
        )
    if values.dtype not in (np.int32, np.int64):
        raise TypeError(f"{name} must have dtype int32 or int64, got {values.dtype}")
    if values.shape != (num_envs,):
        raise ValueError(f"{name} must have shape ({num_envs},), got {values.shape}")
    return values.tolist()


class PyVecToolEnv:
    """``num_envs`` independent ToolEnv episodes stepped together (reference backend, see ENV_CONTRACT.md)."""

    def __init__(
        self,
        num_envs: int,
        suite: str | Path = "default",
        seed: int = 0,
        num_threads: int = 0,
        invalid_action: str = "error",
        episode_len: int | None = None,
    ) -> None:
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, int | np.integer)
            or not 1 <= num_envs <= MAX_NUM_ENVS
        ):
            raise ValueError(f"num_envs must be an integer in [1, {MAX_NUM_ENVS}], got {num_envs!r}")
        if (
            isinstance(num_threads, bool)
            or not isinstance(num_threads, int | np.integer)
            or not 0 <= num_threads <= MAX_THREADS
        ):
            raise ValueError(
                f"num_threads must be an integer in [0, {MAX_THREADS}] (0 = all cores), got {num_threads!r}"
            )
        if invalid_action not in INVALID_ACTION_MODES:
            raise ValueError(f"invalid_action must be one of {INVALID_ACTION_MODES}, got {invalid_action!r}")
        self._suite: Suite = load_suite(suite)
        if episode_len is None:
            episode_len = self._suite.episode_len
        if (
            isinstance(episode_len, bool)
            or not isinstance(episode_len, int | np.integer)
            or not 1 <= episode_len <= MAX_EPISODE_LEN
        ):
            raise ValueError(
                f"episode_len must be an integer in [1, {MAX_EPISODE_LEN}] or None, got {episode_len!r}"
            )

        num_envs, num_threads, episode_len = int(num_envs), int(num_threads), int(episode_len)
        s = self._suite
        self.num_envs = num_envs
        self.num_tools = len(s.tools)
        self.num_args = s.num_args
        self.episode_len = episode_len
        self.obs_dim = s.obs_dim
        self.tool_names = [t.name for t in s.tools]
        self.suite_name = s.name
        self.num_tasks = len(s.tasks)
        self.invalid_action = invalid_action
        self.num_threads = num_threads  # accepted for API parity; the reference is single-threaded

        # Observation layout (offsets into a row of obs).
        nf = len(s.facts)
        self._off_goal = nf
        self._off_tool = 2 * nf
        self._off_result = self._off_tool + self.num_tools + 1
        self._off_target = self._off_result + NUM_RESULTS
        self._off_step = self._off_target + self.num_args

        self._allocate(num_envs)
        self._seed = check_seed(seed)
        self.reset(self._seed)

    def _allocate(self, n: int) -> None:
        """The output buffers (see ENV_CONTRACT.md) and the per-env state of ``n`` envs."""
        self.obs = np.zeros((n, self.obs_dim), dtype=np.float32)
        self.tool_mask = np.zeros((n, self.num_tools), dtype=bool)
        self.arg_mask = np.zeros((n, self.num_args), dtype=bool)
        self.phase = np.zeros(n, dtype=np.uint8)
        self.rewards = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.results = np.zeros(n, dtype=np.uint8)
        self.episode_return = np.zeros(n, dtype=np.float32)
        self.episode_length = np.zeros(n, dtype=np.int32)
        self.episode_success = np.zeros(n, dtype=bool)

        # Per-env state.
        self._rng = [0] * n
        self._facts = [0] * n
        self._task = [0] * n
        self._target = [0] * n
        self._t = [0] * n
        self._last_tool = [0] * n  # 0 = none, else 1 + tool index
        self._last_result = [RESULT_NONE] * n
        self._return = [0.0] * n

    # -- RNG ----------------------------------------------------------------------------------------------------

    def _next_u64(self, i: int) -> int:
        state = (self._rng[i] + GOLDEN_GAMMA) & MASK64
        self._rng[i] = state
        return mix64(state)

    def _uniform(self, i: int) -> float:
        return (self._next_u64(i) >> 11) * TWO_POW_MINUS_53

    # -- episode bookkeeping ------------------------------------------------------------------------------------

    def _begin_episode(self, i: int) -> None:
        task_index = self._next_u64(i) % self.num_tasks
        task = self._suite.tasks[task_index]
        self._task[i] = task_index
        self._target[i] = self._next_u64(i) % task.num_candidates
        self._facts[i] = task.start
        self._t[i] = 0
        self._last_tool[i] = 0
        self._last_result[i] = RESULT_NONE
        self._return[i] = 0.0

    def _write_view(self, i: int) -> None:
        """Write obs row, masks and phase of env ``i`` from its state."""
        s = self._suite
        task = s.tasks[self._task[i]]
        facts = self._facts[i]
        row = self.obs[i]
        row[:] = 0.0
        nf = len(s.facts)
        for b in range(nf):
            if facts >> b & 1:
                row[b] = 1.0
            if task.goal >> b & 1:
                row[self._off_goal + b] = 1.0
        row[self._off_tool + self._last_tool[i]] = 1.0
        row[self._off_result + self._last_result[i]] = 1.0
        if facts & s.target_fact:
            row[self._off_target + self._target[i]] = 1.0
        row[self._off_step] = self._t[i] / self.episode_len
        for j, tool in enumerate(s.tools):
            self.tool_mask[i, j] = facts & tool.requires == tool.requires
        self.arg_mask[i, :] = False
        self.arg_mask[i, : task.num_candidates] = True
        self.phase[i] = 0 if self._t[i] == 0 else 1

    def _clear_outputs(self, i: int) -> None:
        self.rewards[i] = 0.0
        self.terminated[i] = False
        self.truncated[i] = False
        self.results[i] = self._last_result[i]
        self.episode_return[i] = self._return[i]
        self.episode_length[i] = self._t[i]
        self.episode_success[i] = False

    def _is_valid(self, i: int, tool: int, arg: int) -> bool:
        if not 0 <= tool < self.num_tools or not 0 <= arg < self._suite.tasks[self._task[i]].num_candidates:
            return False
        required = self._suite.tools[tool].requires
        return self._facts[i] & required == required

    # -- public API ---------------------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode in every env; with ``seed``, first reseed every env's RNG stream from it."""
        if seed is not None:
            self._seed = check_seed(seed)
            self._rng = [seed_stream(self._seed, i) for i in range(self.num_envs)]
        for i in range(self.num_envs):
            self._begin_episode(i)
            self._write_view(i)
            self._clear_outputs(i)

    def step(self, tools: np.ndarray, args: np.ndarray) -> None:
        """Apply one (tool, argument) action per env; writes every buffer in place (auto-reset on episode end)."""
        tool_list, arg_list, valid = self._check_step(tools, args)
        for i in range(self.num_envs):
            reward, result, goal = self._transition(i, tool_list[i], arg_list[i], valid[i])
            self._finish(i, reward, result, goal)

    def _check_step(self, tools: np.ndarray, args: np.ndarray) -> tuple[list[int], list[int], list[bool]]:
        """Validate a step's action arrays: (tools, args, valid per env); raises on the first invalid action in
        ``invalid_action="error"`` mode."""
        tool_list = check_actions(tools, self.num_envs, "tools")
        arg_list = check_actions(args, self.num_envs, "args")
        valid = [self._is_valid(i, tool_list[i], arg_list[i]) for i in range(self.num_envs)]
        if self.invalid_action == "error":
            for i, ok in enumerate(valid):
                if not ok:
                    raise ValueError(self._invalid_message(i, tool_list[i], arg_list[i]))
        return tool_list, arg_list, valid

    def _invalid_message(self, i: int, tool: int, arg: int) -> str:
        k = self._suite.tasks[self._task[i]].num_candidates
        if not 0 <= tool < self.num_tools:
            return f"env {i}: tool {tool} is out of range [0, {self.num_tools})"
        if not 0 <= arg < k:
            return f"env {i}: arg {arg} is not a valid candidate (arg_mask allows [0, {k}))"
        return f"env {i}: tool {tool} ({self.tool_names[tool]}) is masked: its preconditions do not hold (see tool_mask)"

    def _gain(self, i: int, tool: int, new: int) -> int:
        """Facts env ``i``'s call of ``tool`` gains, given the relevant facts ``new`` it could add (non-zero):
        all of them when the flaky roll succeeds, none otherwise. ShellEnv overrides it with the real facts."""
        return new if self._uniform(i) < self._suite.tools[tool].success_prob else 0

    def _transition(self, i: int, tool: int, arg: int, valid: bool) -> tuple[float, int, bool]:
        """The step rule of env ``i`` up to the episode's end: updates its facts and last tool, returns
        (reward so far, result, goal facts hold)."""
        s = self._suite
        rw = s.rewards
        task = s.tasks[self._task[i]]
        facts = self._facts[i]
        reward = -rw.step_cost
        if not valid:
            result = RESULT_INVALID
            reward += rw.invalid
            self._last_tool[i] = 0
        else:
            spec = s.tools[tool]
            self._last_tool[i] = tool + 1
            adds = spec.adds & task.relevant
            if spec.takes_arg and arg != self._target[i]:
                result = RESULT_EMPTY
                reward += rw.empty
            elif adds & ~facts == 0:
                result = RESULT_EMPTY
                reward += rw.empty
            else:
                gained = self._gain(i, tool, adds & ~facts)
                if gained:
                    result = RESULT_SUCCESS
                    reward += rw.success
                    reward += rw.shaping * gained.bit_count() / task.relevant.bit_count()
                    facts |= gained
                else:
                    result = RESULT_FAILURE
                    reward += rw.failure
        self._facts[i] = facts
        return reward, result, facts & task.goal == task.goal

    def _finish(self, i: int, reward: float, result: int, terminated: bool) -> None:
        """End env ``i``'s step: completion bonus, output buffers, auto-reset, view."""
        rw = self._suite.rewards
        self._t[i] += 1
        self._last_result[i] = result
        truncated = not terminated and self._t[i] >= self.episode_len
        if terminated:
            reward += rw.completion
        self._return[i] += reward

        self.rewards[i] = reward
        self.terminated[i] = terminated
        self.truncated[i] = truncated
        self.results[i] = result
        self.episode_return[i] = self._return[i]
        self.episode_length[i] = self._t[i]
        self.episode_success[i] = terminated
        if terminated or truncated:
            self._begin_episode(i)
        self._write_view(i)

    def snapshot(self, i: int) -> bytes:
        """Full state of env ``i`` (RNG included) as bytes; ``restore`` accepts it in either backend."""
        i = self._check_index(i)
        return SNAPSHOT_FORMAT.pack(
            SNAPSHOT_MAGIC,
            self.num_tools,
            self.num_tasks,
            self.episode_len,
            self._rng[i],
            self._facts[i],
            self._task[i],
            self._target[i],
            self._t[i],
            self._last_tool[i],
            self._last_result[i],
            self._return[i],
        )

    def restore(self, i: int, state: bytes) -> None:
        """Make env ``i`` continue exactly as after ``snapshot``; refreshes its obs, masks and outputs."""
        i = self._check_index(i)
        if not isinstance(state, bytes | bytearray | memoryview):
            raise TypeError(f"state must be bytes from snapshot(), got {type(state).__name__}")
        state = bytes(state)
        if len(state) != SNAPSHOT_FORMAT.size:
            raise ValueError(f"state must be {SNAPSHOT_FORMAT.size} bytes from snapshot(), got {len(state)}")
        magic, n_tools, n_tasks, ep_len, rng, facts, task, target, t, last_tool, last_result, ret = (
            SNAPSHOT_FORMAT.unpack(state)
        )
        if magic != SNAPSHOT_MAGIC:
            raise ValueError("state is not a ToolEnv snapshot (bad magic)")
        if (n_tools, n_tasks, ep_len) != (self.num_tools, self.num_tasks, self.episode_len):
            raise ValueError(
                f"snapshot is from another env configuration (tools={n_tools}, tasks={n_tasks}, episode_len={ep_len}); "
                f"this env has tools={self.num_tools}, tasks={self.num_tasks}, episode_len={self.episode_len}"
            )
        if (
            task >= n_tasks
            or target >= self._suite.tasks[task].num_candidates
            or t >= ep_len
            or last_tool > n_tools
            or last_result >= NUM_RESULTS
            or facts >> len(self._suite.facts)
            or facts & self._suite.tasks[task].goal == self._suite.tasks[task].goal
            or not abs(ret) <= F32_MAX  # also rejects NaN
        ):
            raise ValueError("snapshot holds an inconsistent state (corrupted bytes?)")
        self._rng[i] = rng
        self._facts[i] = facts
        self._task[i] = task
        self._target[i] = target
        self._t[i] = t
        self._last_tool[i] = last_tool
        self._last_result[i] = last_result
        self._return[i] = ret
        self._write_view(i)
        self._clear_outputs(i)

    def _check_index(self, i: object) -> int:
        if isinstance(i, bool) or not isinstance(i, int | np.integer) or not 0 <= int(i) < self.num_envs:
            raise IndexError(f"env index must be an integer in [0, {self.num_envs}), got {i!r}")
        return int(i)

    def oracle_actions(self) -> tuple[np.ndarray, np.ndarray]:
        """The scripted oracle's (tools, args): the first tool of the task's plan whose relevant effects are not all
        held yet, with the target as argument (0 for tools without one). Retries flaky failures."""
        s = self._suite
        tools = np.zeros(self.num_envs, dtype=np.int64)
        args = np.zeros(self.num_envs, dtype=np.int64)
        for i in range(self.num_envs):
            task = s.tasks[self._task[i]]
            for tool_index in task.plan:
                spec = s.tools[tool_index]
                if spec.adds & task.relevant & ~self._facts[i]:
                    tools[i] = tool_index
                    args[i] = self._target[i] if spec.takes_arg else 0
                    break
        return tools, args
