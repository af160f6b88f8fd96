"""ShellEnv: real workspaces and histories, fresh isolated episodes, offline tools failing for real, snapshots,
bad input, and the unchanged trainers/adapters on env=shell."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dspy_rl.envs import SuiteError, VecToolEnv
from dspy_rl.envs.shellenv.suite import load_shell_suite
from dspy_rl.envs.shellenv.tools import CommandContext, command
from dspy_rl.envs.shellenv.workspaces import (
    Pack,
    WorkspaceError,
    available_workspaces,
    build_template,
    load_workspace,
)

SUITE = Path(__file__).resolve().parents[2] / "envs" / "suites" / "shell.json"


def test_at_least_eight_real_workspaces() -> None:
    names = available_workspaces()
    assert len(names) >= 8, names
    specs = [load_workspace(n) for n in names]
    assert all(any(f.startswith("tests/") for f in s.files) for s in specs)  # Python packages with tests
    assert all("Makefile" in s.files for s in specs)
    assert max(len(s.commits) for s in specs) >= 5  # a real history, not just one commit
    assert any(s.name == "mkgen" for s in specs)  # the Makefile code-generator project
    assert all(len(s.files) <= 200 and 1 <= len(s.candidates) <= 8 for s in specs)


def test_malformed_workspace_is_named(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="unknown workspace 'nope'"):
        load_workspace("nope")
    ws = tmp_path / "w"
    (ws / "project").mkdir(parents=True)
    (ws / "project" / "a.py").write_text("x = 1\n")
    (ws / "fix.diff").write_text("")
    doc = {
        "project": "w",
        "bug": {"issue": "i", "file": "a.py", "patch": "fix.diff", "grep": "x =", "find": "a.py"},
    }
    (ws / "workspace.json").write_text(json.dumps(doc))
    with pytest.raises(WorkspaceError, match="missing field `commits`"):
        load_workspace(ws)
    doc["commits"] = [{"message": "m", "files": ["b.py"]}]
    (ws / "workspace.json").write_text(json.dumps(doc))
    with pytest.raises(WorkspaceError, match="'b.py' is not a file"):
        load_workspace(ws)


def test_suite_must_match_its_workspaces(tmp_path: Path) -> None:
    doc = json.loads(SUITE.read_text())
    doc["catalog"] = str(SUITE.parent.parent / "catalog.json")
    bad = tmp_path / "bad.json"
    doc["tasks"][0]["num_candidates"] = 1
    bad.write_text(json.dumps(doc))
    with pytest.raises(SuiteError, match=r"tasks\[0\].num_candidates` is 1 but workspace calc has 5"):
        load_shell_suite(bad)
    doc["tasks"][0]["num_candidates"] = 5
    doc["tasks"][0]["workspace"] = "nope"
    bad.write_text(json.dumps(doc))
    with pytest.raises(SuiteError, match=r"tasks\[0\].workspace`: unknown workspace 'nope'"):
        load_shell_suite(bad)
    with pytest.raises(SuiteError, match="symbolic-only suite"):
        load_shell_suite("default")


def test_pack_bytes_round_trip_and_refuse_escapes() -> None:
    pack = Pack(("d",), (("d/f", 0o644, b"hi"),))
    assert Pack.from_bytes(pack.to_bytes()) == pack
    evil = Pack(("d",), (("../f", 0o644, b"x"),)).to_bytes()
    with pytest.raises(ValueError, match="leaving the workspace"):
        Pack.from_bytes(evil)


# ------------------------------------------------------------------------------------------------ sandboxed


@pytest.mark.usefixtures("sandbox_ok")
def test_template_has_the_replayed_history_and_the_bug(tmp_path: Path) -> None:
    from dspy_rl.shell.sandbox import Sandbox

    spec = load_workspace("kvstore")
    build_template(spec).write(tmp_path / "ws")
    with Sandbox(tmp_path / "ws") as box:
        log = box.run("cd kvstore && git -c safe.directory='*' log --format=%s")
        assert log.exit_code == 0, log
        assert log.stdout.split("\n")[:2] == ["release 0.4.0", "codec: drop the redundant backslash escape"]
        assert len(log.stdout.strip().splitlines()) == len(spec.commits) == 5
        status = box.run("cd kvstore && git -c safe.directory='*' status --porcelain")
        assert status.exit_code == 0 and status.stdout == ""  # the tree is exactly HEAD
        tests = box.run("cd kvstore && make -s test")
        assert tests.exit_code != 0 and "failed" in tests.stdout  # the bug is real
        ctx = CommandContext(spec, None)
        pip = box.run(command("pip_install", ctx))
        curl = box.run(command("curl", ctx))
        assert pip.exit_code not in (0, None) and curl.exit_code not in (0, None)  # offline, for real


@pytest.mark.usefixtures("sandbox_ok")
def test_episodes_are_fresh_and_isolated(shell_state) -> None:
    from dspy_rl.envs.shellenv.env import ShellVecEnv

    env = ShellVecEnv(2, "shell", num_threads=2)
    try:
        j = [t.name for t in env._suite.tasks].index("calc/run_tests")
        for i in range(2):
            env.restore(i, shell_state(env, j, 2))
        ops = [env.workspace_path(i) / "calc" / "calc" / "ops.py" for i in range(2)]
        before = ops[0].read_text()
        pwd = env.tool_names.index("pwd")
        names = []
        for _ in range(7):  # env 0 follows the oracle (ls cd grep cat edit make pytest), env 1 only runs pwd
            tools, args = env.oracle_actions()
            tools[1], args[1] = pwd, 0
            names.append(env.tool_names[tools[0]])
            env.step(tools, args)
            if names[-1] == "edit":
                assert "a / b" in ops[0].read_text()  # the patch was applied in env 0's copy ...
                assert ops[1].read_text() == before  # ... and not in env 1's
        assert names == ["ls", "cd", "grep", "cat", "edit", "make", "pytest"]
        assert env.terminated[0] and env.episode_success[0] and not env.terminated[1]
        # env 0 auto-reset: a new episode in a fresh copy of its (new) task's workspace
        fresh = env.workspace_path(0) / "calc" / "calc" / "ops.py"
        assert not fresh.exists() or fresh.read_text() == before
    finally:
        env.close()
    assert not env.workspace_path(0).exists()


@pytest.mark.usefixtures("sandbox_ok")
def test_snapshot_restore_carries_the_workspace() -> None:
    from dspy_rl.envs.shellenv.env import ShellVecEnv

    env = ShellVecEnv(2, "shell", seed=4, num_threads=2)
    try:
        for _ in range(5):
            tools, args = env.oracle_actions()
            env.step(tools, args)
        state = env.snapshot(0)
        env.restore(1, state)
        np.testing.assert_array_equal(env.obs[0], env.obs[1])
        a = sorted(p.relative_to(env.workspace_path(0)) for p in env.workspace_path(0).rglob("*"))
        b = sorted(p.relative_to(env.workspace_path(1)) for p in env.workspace_path(1).rglob("*"))
        assert a == b
        for _ in range(3):
            tools, args = env.oracle_actions()
            env.step(tools, args)
            assert env.results[0] == env.results[1] and env.rewards[0] == env.rewards[1]
        with pytest.raises(ValueError, match="not a ShellEnv snapshot"):
            env.restore(0, state[:57])
    finally:
        env.close()


@pytest.mark.usefixtures("sandbox_ok")
def test_bad_actions_raise_and_change_nothing() -> None:
    env = VecToolEnv(2, "shell", backend="shell", num_threads=2)
    try:
        obs = env.obs.copy()
        with pytest.raises(ValueError, match="out of range"):
            env.step(np.array([99, 0]), np.array([0, 0]))
        with pytest.raises(ValueError, match="not a valid candidate"):
            env.step(np.array([0, 0]), np.array([0, 63]))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.array([0]), np.array([0]))
        np.testing.assert_array_equal(env.obs, obs)
    finally:
        env.close()
    with pytest.raises(SuiteError, match="symbolic-only suite"):
        VecToolEnv(1, "default", backend="shell")


@pytest.mark.usefixtures("sandbox_ok")
def test_gym_adapter_runs_shell_env_unchanged() -> None:
    from dspy_rl.envs.gym_env import ToolGymEnv

    env = ToolGymEnv(suite="shell", seed=2, backend="shell", invalid_action="error")
    try:
        env.reset(seed=2)
        for _ in range(30):
            tools, args = env.vec.oracle_actions()
            _, _, terminated, truncated, info = env.step(np.array([tools[0], args[0]]))
            if terminated or truncated:
                break
        assert terminated and info["is_success"]
    finally:
        env.vec.close()


def test_episode_dirs_are_removed_on_close_collection_and_after_a_crash(tmp_path: Path) -> None:
    import subprocess
    import sys

    from dspy_rl.envs.shellenv.workspaces import EpisodeDirs

    d = EpisodeDirs(2, str(tmp_path))
    Pack((), (("f", 0o644, b"x"),)).write(d.path(0))
    root = d.root
    del d
    assert not root.exists()
    # a process killed before it could clean up leaves its root; the next EpisodeDirs on that base removes it
    code = (
        "import os; from dspy_rl.envs.shellenv.workspaces import EpisodeDirs;"
        f"d = EpisodeDirs(1, {str(tmp_path)!r}); print(d.root, flush=True); os._exit(0)"
    )
    left = Path(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    assert left.exists()
    EpisodeDirs(1, str(tmp_path)).close()
    assert not left.exists()
