"""RLlib adapter: turn structure, batched vector env protocol, and one real PPO iteration (new API stack)."""

from __future__ import annotations

import numpy as np
import pytest
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.utils.pre_checks.env import check_multiagent_environments

from dspy_rl.envs.rllib_env import (
    AGENTS,
    ENV_NAME,
    ToolMultiAgentEnv,
    ToolVectorMultiAgentEnv,
    configure,
    policy_mapping_fn,
)


def _oracle_actions(vec, i: int, agents: set[str]) -> dict[str, int]:
    tools, args = vec.oracle_actions()
    tool_agent = "A" if vec.phase[i] == 0 else "B"
    assert tool_agent in agents and "C" in agents
    return {tool_agent: int(tools[i]), "C": int(args[i])}


def test_rllib_env_checker_passes() -> None:
    check_multiagent_environments(ToolMultiAgentEnv({"suite": "default"}))
    check_multiagent_environments(ToolMultiAgentEnv({"suite": "hard", "action_masks": False}))


def test_turn_structure_and_reward_credit() -> None:
    env = ToolMultiAgentEnv({"suite": "default", "seed": 3, "invalid_action": "error"})
    obs, _ = env.reset(seed=3)
    assert set(obs) == {"A", "C"}
    assert env.observation_spaces["A"].contains(obs["A"]) and env.observation_spaces["C"].contains(obs["C"])
    totals = dict.fromkeys(AGENTS, 0.0)
    steps = 0
    while True:
        obs, rewards, terms, truncs, _ = env.step(_oracle_actions(env.vec, 0, set(obs)))
        steps += 1
        for agent, r in rewards.items():
            totals[agent] += r
        if terms["__all__"] or truncs["__all__"]:
            break
        assert set(obs) == {"B", "C"} and set(rewards) == set(AGENTS) - ({"B"} if steps == 1 else set())
    assert set(obs) == set(AGENTS) and terms["__all__"] and all(terms[a] for a in AGENTS)
    episode_return = float(env.vec.episode_return[0])
    # C and A (via the rewards accumulated on its single transition) see the whole return; B all but step 0's.
    assert totals["C"] == pytest.approx(episode_return, abs=1e-4)
    assert totals["A"] == pytest.approx(episode_return, abs=1e-4)
    assert totals["B"] < totals["C"] or steps == 1
    # reset() continues from the auto-reset state that came with the last step.
    obs2, _ = env.reset()
    np.testing.assert_array_equal(obs2["A"]["observations"], obs["A"]["observations"])


def test_missing_action_and_bad_config_are_reported() -> None:
    env = ToolMultiAgentEnv({"suite": "easy"})
    env.reset()
    with pytest.raises(KeyError, match="'A'"):
        env.step({"C": 0})
    with pytest.raises(ValueError, match="unknown env_config keys"):
        ToolMultiAgentEnv({"suit": "easy"})


def test_vector_env_matches_single_env_and_follows_next_step_autoreset() -> None:
    """num_envs=1 vector env == single env on the same seed, plus RLlib's extra reset step after each episode."""
    single = ToolMultiAgentEnv({"suite": "easy", "seed": 9})
    vector = ToolVectorMultiAgentEnv({"suite": "easy", "seed": 9}, num_envs=1)
    s_obs, _ = single.reset(seed=9)
    v_obs, _ = vector.reset(seed=9)
    episodes = 0
    for _ in range(60):
        np.testing.assert_equal(v_obs[0], s_obs)
        actions = _oracle_actions(single.vec, 0, set(s_obs))
        s_obs, s_rew, s_term, s_trunc, _ = single.step(actions)
        v_obs, v_rew, v_term, v_trunc, _ = vector.step([actions])
        assert v_rew[0] == s_rew and v_term[0] == s_term and v_trunc[0] == s_trunc
        np.testing.assert_equal(v_obs[0], s_obs)
        if s_term["__all__"] or s_trunc["__all__"]:
            episodes += 1
            s_obs, _ = single.reset()
            # The vector env hands out the reset observation one step later, ignoring that step's actions.
            v_obs, v_rew, v_term, _, _ = vector.step([{"B": 0, "C": 0}])
            assert v_rew[0] == {} and v_term[0] == {"__all__": False}
    assert episodes >= 5


def test_vector_env_batches_many_envs() -> None:
    vector = ToolVectorMultiAgentEnv({"suite": "default", "seed": 1, "invalid_action": "error"}, num_envs=16)
    obs, _ = vector.reset(seed=1)
    ended = 0
    for _ in range(80):
        actions = [_oracle_actions(vector.vec, i, set(o)) for i, o in enumerate(obs)]
        obs, rewards, terms, truncs, _ = vector.step(actions)
        ended += sum(t["__all__"] for t in terms)
        for o in obs:
            assert set(o) in ({"A", "C"}, {"B", "C"}, {"A", "B", "C"})
    assert ended >= 16


@pytest.mark.parametrize("vectorized", [False, True], ids=["registered_env", "batched_env_runner"])
def test_one_ppo_iteration(ray_session, vectorized: bool) -> None:
    config = (
        PPOConfig()
        .training(train_batch_size_per_learner=128, minibatch_size=64, num_epochs=1, lr=1e-3)
        .env_runners(num_env_runners=0, rollout_fragment_length="auto")
        .learners(num_learners=0)
        .debugging(seed=0)
    )
    # invalid_action="error": any action that ignores the masks would raise inside the env.
    env_config = {"suite": "easy", "seed": 0, "invalid_action": "error"}
    config = configure(config, env_config, num_envs_per_env_runner=4, vectorized=vectorized, hidden=(32,))
    assert config.env == ENV_NAME and config.policy_mapping_fn is policy_mapping_fn
    algo = config.build_algo()
    try:
        before = {p: {k: v.clone() for k, v in algo.get_module(p).state_dict().items()} for p in AGENTS}
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] >= 128
        assert set(AGENTS) <= set(result["learners"])
        assert set(result["env_runners"]["agent_episode_returns_mean"]) == set(AGENTS)
        for p in AGENTS:
            after = algo.get_module(p).state_dict()
            assert any(not np.allclose(before[p][k], after[k]) for k in after), f"policy {p} was not updated"
    finally:
        algo.stop()
