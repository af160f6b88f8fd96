"""PettingZoo adapter: parallel_api_test, A/B/C turn structure, team reward, errors."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from dspy_rl.envs import rust_available
from dspy_rl.envs.pettingzoo_env import AGENTS, ToolParallelEnv

BACKENDS = ["python", "rust"] if rust_available() else ["python"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("suite", ["easy", "default", "hard"])
def test_parallel_api_test_passes(suite: str, backend: str) -> None:
    parallel_api_test(ToolParallelEnv(suite=suite, seed=1, backend=backend), num_cycles=300)


def test_parallel_seed_test_passes() -> None:
    parallel_seed_test(lambda: ToolParallelEnv(suite="default"), num_cycles=50)


def test_turn_structure_masks_and_team_reward() -> None:
    env = ToolParallelEnv(suite="default", seed=4, invalid_action="error")
    obs, infos = env.reset(seed=4)
    assert env.agents == list(AGENTS)
    # First step: A and C act, B is forced to the no-op action 0.
    assert infos["A"]["active"] and infos["C"]["active"] and not infos["B"]["active"]
    assert obs["B"]["action_mask"].tolist() == [1] + [0] * (env.vec.num_tools - 1)
    np.testing.assert_array_equal(obs["A"]["action_mask"], env.vec.tool_mask[0].astype(np.int8))
    steps, total = 0, 0.0
    while True:
        tools, args = env.vec.oracle_actions()
        tool_agent = "A" if steps == 0 else "B"
        # The inactive tool agent's action is ignored, so any value (here an out-of-range one) is harmless.
        other = "B" if tool_agent == "A" else "A"
        actions = {tool_agent: int(tools[0]), "C": int(args[0]), other: 999}
        obs, rewards, terms, truncs, infos = env.step(actions)
        steps += 1
        assert len(set(rewards.values())) == 1, "all agents share the team reward"
        total += rewards["A"]
        assert infos[tool_agent]["acted"] and not infos[other]["acted"]
        if any(terms.values()) or any(truncs.values()):
            break
        assert infos["B"]["active"] and not infos["A"]["active"]
        assert obs["A"]["action_mask"].tolist() == [1] + [0] * (env.vec.num_tools - 1)
    assert all(terms.values()) and env.agents == []
    assert infos["A"]["is_success"] and infos["C"]["episode_length"] == steps
    assert infos["B"]["episode_return"] == pytest.approx(total, abs=1e-4)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({"A": 0, "C": 0})


def test_missing_unknown_and_malformed_actions() -> None:
    env = ToolParallelEnv(suite="easy")
    env.reset(seed=0)
    with pytest.raises(KeyError, match="'A'"):
        env.step({"B": 0, "C": 0})
    with pytest.raises(KeyError, match="unknown agents"):
        env.step({"A": 0, "C": 0, "D": 1})
    with pytest.raises(ValueError, match="one integer"):
        env.step({"A": [0, 1], "C": 0})
