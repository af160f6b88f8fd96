"""Determinism, threading invariance, auto-reset bookkeeping and snapshot/restore replay (Rust backend)."""

from __future__ import annotations

import numpy as np
import pytest

from dspy_rl.envs import VecToolEnv
from dspy_rl.envs.baselines import random_actions

PAR_THRESHOLD = pytest.importorskip(
    "dspy_rl._rust_env", reason="run `maturin develop --release` to build it"
).PAR_THRESHOLD


def _trace(env, steps: int, action_seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(action_seed)
    out = []
    for _ in range(steps):
        env.step(*random_actions(env, rng))
        out.append({"obs": env.obs.copy(), "rewards": env.rewards.copy(), "results": env.results.copy()})
    return out


def _equal(a, b) -> bool:
    return all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)


def test_same_seed_same_trajectory_different_seed_different() -> None:
    a = _trace(VecToolEnv(16, "default", seed=7), 60, action_seed=0)
    b = _trace(VecToolEnv(16, "default", seed=7), 60, action_seed=0)
    c = _trace(VecToolEnv(16, "default", seed=8), 60, action_seed=0)
    assert _equal(a, b)
    assert not _equal(a, c)


def test_reset_with_seed_restarts_the_streams(copy_outputs) -> None:
    env = VecToolEnv(16, "hard", seed=4)
    first = copy_outputs(env)
    a = _trace(env, 30, action_seed=1)
    env.reset(seed=4)
    assert all(np.array_equal(v, getattr(env, k)) for k, v in first.items())
    assert _equal(a, _trace(env, 30, action_seed=1))
    env.reset()  # no seed: continues the streams, so new episodes
    assert env.phase.sum() == 0 and env.episode_length.sum() == 0


@pytest.mark.parametrize("num_envs", [PAR_THRESHOLD, 2 * PAR_THRESHOLD + 37])
def test_parallel_stepping_equals_serial(num_envs: int, same_outputs) -> None:
    """At and above the rayon threshold the multi-threaded step gives the serial result."""
    serial = VecToolEnv(num_envs, "default", seed=2, num_threads=1)
    parallel = VecToolEnv(num_envs, "default", seed=2, num_threads=3)
    assert serial.num_threads == 1 and parallel.num_threads == 3
    rng = np.random.default_rng(0)
    for step in range(25):
        tools, args = random_actions(serial, rng)
        serial.step(tools, args)
        parallel.step(tools, args)
        same_outputs(serial, parallel, f"at step {step}")


def test_buffers_are_the_same_objects_updated_in_place() -> None:
    env = VecToolEnv(8, "default", seed=0)
    obs, rewards = env.obs, env.rewards
    env.step(*env.oracle_actions())
    assert env.obs is obs and env.rewards is rewards
    assert obs.dtype == np.float32 and obs.shape == (8, env.obs_dim) and obs.flags.c_contiguous
    assert env.tool_mask.dtype == bool and env.arg_mask.dtype == bool
    assert env.phase.dtype == np.uint8 and env.results.dtype == np.uint8
    assert env.episode_length.dtype == np.int32 and env.episode_return.dtype == np.float32


def test_episode_bookkeeping_and_auto_reset() -> None:
    env = VecToolEnv(64, "default", seed=5)
    assert (env.phase == 0).all() and (env.results == 0).all()
    total = np.zeros(64)
    for _ in range(env.episode_len + 1):
        env.step(*env.oracle_actions())
        total += env.rewards
        done = env.terminated | env.truncated
        assert not (env.terminated & env.truncated).any()
        # Ended episodes: the next episode's first state is already in obs/phase.
        assert (env.phase[done] == 0).all() and (env.phase[~done] == 1).all()
        np.testing.assert_allclose(env.episode_return[done], total[done], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(env.episode_success[done], env.terminated[done])
        assert (env.episode_length[~done] > 0).all()
        total[done] = 0.0
    assert env.episode_success.any()


@pytest.mark.parametrize("backend", ["rust", "python"])
def test_restore_replays_the_same_outputs_g_times(backend: str, copy_outputs) -> None:
    """Restore then the same actions gives the same outputs, every time."""
    env = VecToolEnv(4, "hard", seed=13, backend=backend)
    rng = np.random.default_rng(2)
    for _ in range(5):
        env.step(*random_actions(env, rng))
    states = [env.snapshot(i) for i in range(4)]
    actions, first = [], []
    for _ in range(25):
        tools, args = random_actions(env, rng)
        actions.append((tools, args))
        env.step(tools, args)
        first.append(copy_outputs(env))
    for _ in range(3):
        for i, state in enumerate(states):
            env.restore(i, state)
            assert env.snapshot(i) == state
        for (tools, args), want in zip(actions, first, strict=True):
            env.step(tools, args)
            for name, value in want.items():
                np.testing.assert_array_equal(getattr(env, name), value, err_msg=name)


@pytest.mark.parametrize("backend", ["rust", "python"])
def test_one_start_state_into_a_group(backend: str) -> None:
    """GRPO use: one env's state restored into G envs gives G identical starts (same task, target, RNG)."""
    group = 6
    env = VecToolEnv(group, "default", seed=3, backend=backend)
    state = env.snapshot(2)
    for i in range(group):
        env.restore(i, state)
    assert (env.obs == env.obs[2]).all() and (env.tool_mask == env.tool_mask[2]).all()
    for _ in range(env.episode_len):
        env.step(*env.oracle_actions())  # identical actions from identical states stay identical
        assert (env.obs == env.obs[0]).all() and (env.rewards == env.rewards[0]).all()


def test_restore_refreshes_obs_masks_and_outputs() -> None:
    env = VecToolEnv(2, "default", seed=1)
    for _ in range(3):
        env.step(*env.oracle_actions())
    state = env.snapshot(0)
    obs, mask = env.obs[0].copy(), env.tool_mask[0].copy()
    for _ in range(2):
        env.step(*env.oracle_actions())
    env.restore(0, state)
    np.testing.assert_array_equal(env.obs[0], obs)
    np.testing.assert_array_equal(env.tool_mask[0], mask)
    assert env.rewards[0] == 0.0 and not env.terminated[0] and env.phase[0] == 1


def test_python_rng_matches_reference_splitmix64() -> None:
    """Vigna's splitmix64.c seeded with 0 (the Rust unit test checks the same values)."""
    from dspy_rl.envs.reference import GOLDEN_GAMMA, MASK64, mix64

    state = 0
    outputs = []
    for _ in range(2):
        state = (state + GOLDEN_GAMMA) & MASK64
        outputs.append(mix64(state))
    assert outputs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]
