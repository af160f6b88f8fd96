"""PufferLib adapter against the real pufferlib (installed by scripts/install_pufferlib.sh)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "pufferlib", reason="pufferlib is not installed: run scripts/install_pufferlib.sh in the virtualenv"
)
import pufferlib  # noqa: E402
import pufferlib.vector  # noqa: E402

from dspy_rl.envs.puffer_env import ToolPufferEnv  # noqa: E402


def _oracle(env: ToolPufferEnv) -> np.ndarray:
    tools, args = env.vec.oracle_actions()
    return np.stack([tools, args], axis=1).astype(np.int32)


def test_native_vectorization_is_zero_copy_and_oracle_succeeds() -> None:
    vecenv = pufferlib.vector.make(
        ToolPufferEnv,
        backend=pufferlib.vector.PufferEnv,
        env_kwargs={"num_envs": 16, "suite": "default", "seed": 2, "masks_in_obs": False},
    )
    assert isinstance(vecenv, pufferlib.PufferEnv) and vecenv.num_agents == 16
    # PufferLib's buffers are the VecToolEnv's own arrays.
    assert vecenv.observations is vecenv.vec.obs
    assert vecenv.rewards is vecenv.vec.rewards
    assert vecenv.terminals is vecenv.vec.terminated and vecenv.truncations is vecenv.vec.truncated
    vecenv.async_reset(2)
    obs, *_ = vecenv.recv()
    assert obs.shape == (16, vecenv.vec.obs_dim)
    successes, episodes = 0.0, 0
    for _ in range(200):
        vecenv.send(_oracle(vecenv))
        obs, rewards, terms, truncs, infos, env_ids, masks = vecenv.recv()
        assert masks.all() and rewards.dtype == np.float32
        for info in infos:
            successes += info["success_rate"] * info["episodes"]
            episodes += info["episodes"]
    assert episodes > 100 and successes / episodes >= 0.95
    vecenv.close()


def test_masks_in_obs_layout() -> None:
    env = ToolPufferEnv(num_envs=4, suite="easy", seed=0)
    obs, infos = env.reset(seed=0)
    d, t = env.vec.obs_dim, env.vec.num_tools
    assert obs.shape == (4, d + t + env.vec.num_args) and infos == []
    np.testing.assert_array_equal(obs[:, :d], env.vec.obs)
    np.testing.assert_array_equal(obs[:, d : d + t], env.tool_mask.astype(np.float32))
    np.testing.assert_array_equal(obs[:, d + t :], env.arg_mask.astype(np.float32))
    assert env.single_observation_space.contains(obs[0])


def test_serial_backend_copies_into_shared_buffers() -> None:
    vecenv = pufferlib.vector.make(
        ToolPufferEnv,
        backend=pufferlib.vector.Serial,
        num_envs=2,
        env_kwargs={"num_envs": 3, "suite": "easy"},
        seed=5,
    )
    assert vecenv.num_agents == 6
    obs, _ = vecenv.reset(seed=5)
    envs = vecenv.envs
    assert not envs[0].owns_buffers
    assert obs.shape == (6, vecenv.single_observation_space.shape[0])
    rng = np.random.default_rng(0)
    for _ in range(30):
        actions = rng.integers(0, vecenv.single_action_space.nvec, size=(6, 2)).astype(np.int32)
        obs, rewards, terms, truncs, _ = vecenv.step(actions)
        np.testing.assert_array_equal(rewards, np.concatenate([e.vec.rewards for e in envs]))
        np.testing.assert_array_equal(terms, np.concatenate([e.vec.terminated for e in envs]))
        np.testing.assert_array_equal(
            obs[:, : envs[0].vec.obs_dim], np.concatenate([e.vec.obs for e in envs])
        )
    vecenv.close()


def test_bad_action_shape_is_rejected() -> None:
    env = ToolPufferEnv(num_envs=4, suite="easy")
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(4, 2\)"):
        env.step(np.zeros((4,), dtype=np.int32))


def test_error_mode_raises_on_masked_action() -> None:
    env = ToolPufferEnv(num_envs=2, suite="default", invalid_action="error")
    env.reset(seed=0)
    masked = np.flatnonzero(~env.tool_mask[0])
    actions = _oracle(env)
    actions[0, 0] = masked[0]
    with pytest.raises(ValueError, match="env 0"):
        env.step(actions)
