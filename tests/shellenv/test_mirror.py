"""The simulator is checked against reality: every task of the shell suite replays its oracle plan in the Rust
simulator and in ShellEnv (real sandboxed commands) with the same facts, results and rewards after every step,
and reaches its goal in both (in ShellEnv: the task's verifier command passes)."""

from __future__ import annotations

import numpy as np
import pytest

from dspy_rl.envs import VecToolEnv, load_suite
from dspy_rl.envs.shellenv.env import ShellVecEnv

pytestmark = pytest.mark.usefixtures("sandbox_ok")


def _replay_oracle(tasks: list[int], sim_state, shell_state) -> None:
    """Env ``e`` runs task ``tasks[e]``; after every step of its plan both backends must agree."""
    n = len(tasks)
    real = ShellVecEnv(n, "shell", num_threads=2)
    sim = VecToolEnv(n, "shell", backend="rust")
    nf = len(real._suite.facts)
    try:
        for e, j in enumerate(tasks):
            k = real._suite.tasks[j].num_candidates
            target = (3 * j + 1) % k  # vary where the bug's file sits among the candidates
            sim.restore(e, sim_state(sim, j, target))
            real.restore(e, shell_state(real, j, target))
        np.testing.assert_array_equal(real.obs, sim.obs)
        active = np.ones(n, dtype=bool)
        plan_len = np.array([len(real._suite.tasks[j].plan) for j in tasks])
        for step in range(int(plan_len.max())):
            tools, args = sim.oracle_actions()
            rt, ra = real.oracle_actions()
            np.testing.assert_array_equal(tools[active], rt[active])
            np.testing.assert_array_equal(args[active], ra[active])
            real.step(rt, ra)
            sim.step(tools, args)
            for j in np.flatnonzero(active):
                name = real._suite.tasks[tasks[j]].name
                what = f"task {name} step {step} tool {real.tool_names[tools[j]]}: {real.last_outputs[j]}"
                assert real.results[j] == sim.results[j] == 1, (
                    what
                )  # every oracle call succeeds, for real too
                assert real.rewards[j] == pytest.approx(sim.rewards[j]), what
                assert real.terminated[j] == sim.terminated[j], what
                if real.terminated[j]:
                    assert step + 1 == plan_len[j], what
                    active[j] = False
                else:
                    np.testing.assert_array_equal(real.obs[j, :nf], sim.obs[j, :nf], err_msg=what)
                    np.testing.assert_array_equal(real.obs[j], sim.obs[j], err_msg=what)
        assert not active.any(), [real._suite.tasks[tasks[j]].name for j in np.flatnonzero(active)]
    finally:
        real.close()


def _task_names() -> list[str]:
    return [t.name for t in load_suite("shell").tasks]


def test_commit_plans_match_step_by_step(sim_state, shell_state):
    """Every workspace's longest plan (ls cd grep cat edit git_status git_diff make pytest git_commit): every tool."""
    names = _task_names()
    _replay_oracle(
        [j for j, name in enumerate(names) if name.endswith("/commit_fix")], sim_state, shell_state
    )


@pytest.mark.slow
def test_every_task_plan_matches_step_by_step(sim_state, shell_state):
    _replay_oracle(list(range(len(_task_names()))), sim_state, shell_state)


def test_random_actions_match_the_simulator():
    """Masked random actions (wrong files, distractors, offline pip/curl, repeated calls): same dynamics."""
    n, steps = 4, 20
    real = ShellVecEnv(n, "shell", seed=11, num_threads=2)
    sim = VecToolEnv(n, "shell", seed=11, backend="rust")
    rng = np.random.default_rng(0)
    try:
        np.testing.assert_array_equal(real.obs, sim.obs)
        for step in range(steps):
            tools = np.array([rng.choice(np.flatnonzero(m)) for m in real.tool_mask])
            args = np.array([rng.choice(np.flatnonzero(m)) for m in real.arg_mask])
            real.step(tools, args)
            sim.step(tools, args)
            for i in range(n):
                what = f"step {step} env {i} {real.tool_names[tools[i]]}: {real.last_commands[i]!r} -> {real.last_outputs[i]}"
                assert real.results[i] == sim.results[i], what
                assert real.rewards[i] == pytest.approx(sim.rewards[i]), what
            np.testing.assert_array_equal(real.obs, sim.obs)
            np.testing.assert_array_equal(real.tool_mask, sim.tool_mask)
            np.testing.assert_array_equal(real.terminated, sim.terminated)
    finally:
        real.close()
