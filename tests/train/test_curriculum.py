"""Curriculum: padded layouts, promotion on settled rolling success, config parsing and one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError
from dspy_rl.envs import VecToolEnv
from dspy_rl.envs.padded import PaddedVecEnv, PadSpec, obs_columns
from dspy_rl.trainer.curriculum import Curriculum, CurriculumConfig, curriculum_overrides

from ._helpers import BACKEND

SUITES = ["easy", "default", "hard", "expert"]


def test_pad_spec_and_columns_keep_each_segment_in_place() -> None:
    pad = PadSpec.of_suites(SUITES)
    assert pad.to_dict() == {"num_facts": 56, "num_tools": 57, "num_args": 48}
    cols = obs_columns(14, 15, 8, pad)
    assert cols.tolist()[:14] == list(range(14))  # facts
    assert cols.tolist()[14:28] == list(range(56, 70))  # goal facts
    assert cols[28] == 112 and cols[28 + 16] == 112 + 58  # last tool "none", then the result segment
    assert cols[-1] == pad.obs_dim - 1  # step fraction last
    with pytest.raises(ValueError, match="does not fit"):
        obs_columns(60, 15, 8, pad)


def test_padded_env_steps_like_the_env_it_wraps() -> None:
    pad = PadSpec.of_suites(SUITES)
    inner = VecToolEnv(32, "default", seed=1, backend=BACKEND)
    ref = VecToolEnv(32, "default", seed=1, backend=BACKEND)
    env = PaddedVecEnv(inner, pad)
    assert env.obs.shape == (32, pad.obs_dim) and env.num_tools == 57 and env.num_args == 48
    cols = obs_columns(14, 15, 8, pad)
    pad_cols = np.setdiff1d(np.arange(pad.obs_dim), cols)
    rng = np.random.default_rng(0)
    for _ in range(60):
        assert np.array_equal(env.obs[:, cols], ref.obs) and not env.obs[:, pad_cols].any()
        assert np.array_equal(env.tool_mask[:, :15], ref.tool_mask) and not env.tool_mask[:, 15:].any()
        assert np.array_equal(env.arg_mask[:, :8], ref.arg_mask) and not env.arg_mask[:, 8:].any()
        scores = rng.random(env.tool_mask.shape)
        scores[~env.tool_mask] = -1
        tools = scores.argmax(1)
        args = (rng.random(env.arg_mask.shape) * env.arg_mask).argmax(1)
        env.step(tools, args)
        ref.step(tools, args)
        assert np.array_equal(env.rewards, ref.rewards) and np.array_equal(env.phase, ref.phase)
    snap = env.snapshot(3)
    env.step(*env.oracle_actions())
    env.restore(3, snap)
    ref.restore(3, snap)
    assert np.array_equal(env.obs[3, cols], ref.obs[3])


def test_promotion_waits_for_a_settled_window_and_stops_at_the_last_suite() -> None:
    cur = Curriculum(
        CurriculumConfig(suites=["easy", "default"], promote_at=0.9, window=100, min_episodes=50), 10
    )
    assert not cur.observe(np.ones(40), env_steps=1000, episode_len=12)  # too few episodes
    assert not cur.observe(np.ones(40), env_steps=100, episode_len=12)  # 80 episodes but < 12 * 10 steps
    assert not cur.observe(np.zeros(10), env_steps=200, episode_len=12)  # settled, rate 0.89
    assert cur.observe(np.ones(30), env_steps=300, episode_len=12)
    assert cur.suite == "default" and cur.last_stage and cur.success_rate() == 0.0
    assert cur.events == [{"env_steps": 300, "from": "easy", "to": "default", "success_rate": 0.9}]
    assert not cur.observe(np.ones(500), env_steps=10_000, episode_len=20)  # the last suite is never left
    again = Curriculum(CurriculumConfig(suites=["easy", "default"]), 10)
    again.load_state_dict(cur.state_dict())
    assert again.stage == 1 and again.events == cur.events and again.stage_start_step == 300
    with pytest.raises(ValueError, match="differs"):
        Curriculum(CurriculumConfig(suites=["easy", "hard"]), 10).load_state_dict(cur.state_dict())


def test_overrides_and_validation() -> None:
    assert curriculum_overrides(["curriculum=[easy,default]", "curriculum.promote_at=0.8"]) == [
        "curriculum.suites=[easy,default]",
        "curriculum.promote_at=0.8",
    ]
    assert curriculum_overrides(["--curriculum", "easy,hard", "seed=1"]) == [
        "curriculum.suites=[easy,hard]",
        "seed=1",
    ]
    with pytest.raises(ConfigError, match=r"curriculum.suites\[1\]='nope'"):
        CurriculumConfig(suites=["easy", "nope"])
    with pytest.raises(ConfigError, match="promote_at"):
        CurriculumConfig(suites=["easy"], promote_at=0.0)


@pytest.mark.parametrize(
    "argv",
    [
        ["curriculum=[easy,nope]"],
        ["--curriculum", "easy,hard,bogus"],
        ["curriculum=[easy]", "curriculum.promote_at=2"],
    ],
)
def test_train_refuses_a_bad_curriculum_in_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "curriculum" in err and "\n" not in err and "Traceback" not in err
