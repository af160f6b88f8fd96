"""Bad input raises a Python exception that says what was expected, in both backends (never a crash)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dspy_rl import envs_dir
from dspy_rl.envs import VecToolEnv
from dspy_rl.envs.reference import PyVecToolEnv

RustVecToolEnv = pytest.importorskip(
    "dspy_rl._rust_env", reason="run `maturin develop --release` to build it"
).VecToolEnv

BACKENDS = ["rust", "python"]


@pytest.fixture(params=BACKENDS)
def env(request):
    return VecToolEnv(4, "default", seed=0, backend=request.param)


def _ok_actions(env):
    return env.oracle_actions()


def test_actions_must_be_int_arrays(env) -> None:
    tools, args = _ok_actions(env)
    with pytest.raises(TypeError, match=r"tools must be a numpy array of int32 or int64 with shape \(4,\)"):
        env.step(tools.tolist(), args)
    with pytest.raises(TypeError, match="args must have dtype int32 or int64, got float64"):
        env.step(tools, args.astype(np.float64))
    with pytest.raises(TypeError, match="dtype int32 or int64, got uint8"):
        env.step(tools.astype(np.uint8), args)
    with pytest.raises(ValueError, match=r"tools must have shape \(4,\), got \(5,\)"):
        env.step(np.zeros(5, dtype=np.int64), args)
    with pytest.raises(ValueError, match=r"args must have shape \(4,\), got \(4, 1\)"):
        env.step(tools, args.reshape(4, 1))


def test_invalid_actions_error_names_env_and_action_and_change_nothing(env, copy_outputs) -> None:
    before = copy_outputs(env)
    snaps = [env.snapshot(i) for i in range(4)]
    tools, args = _ok_actions(env)
    bad = tools.copy()
    bad[2] = env.num_tools
    with pytest.raises(
        ValueError, match=rf"env 2: tool {env.num_tools} is out of range \[0, {env.num_tools}\)"
    ):
        env.step(bad, args)
    bad[2] = -1
    with pytest.raises(ValueError, match=r"env 2: tool -1 is out of range"):
        env.step(bad, args)
    masked = int(np.flatnonzero(~env.tool_mask[3])[0])
    bad = tools.copy()
    bad[3] = masked
    with pytest.raises(ValueError, match=rf"env 3: tool {masked} \(\w+\) is masked"):
        env.step(bad, args)
    bad_args = args.copy()
    bad_args[1] = env.num_args
    with pytest.raises(ValueError, match=rf"env 1: arg {env.num_args} is not a valid candidate"):
        env.step(tools, bad_args)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(env, name), value, err_msg=name)
    assert snaps == [env.snapshot(i) for i in range(4)]
    env.step(tools, args)  # still usable


@pytest.mark.parametrize("backend", BACKENDS)
def test_constructor_arguments_are_validated(backend: str) -> None:
    with pytest.raises(ValueError, match=r"num_envs must be an integer in \[1, 1048576\], got 0"):
        VecToolEnv(0, "default", backend=backend)
    with pytest.raises(ValueError, match="invalid_action must be one of"):
        VecToolEnv(2, "default", invalid_action="ignore", backend=backend)
    with pytest.raises(ValueError, match="episode_len must be an integer in"):
        VecToolEnv(2, "default", episode_len=0, backend=backend)
    with pytest.raises(ValueError, match=r"num_threads must be an integer in \[0, 1024\]"):
        VecToolEnv(2, "default", num_threads=-1, backend=backend)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        VecToolEnv(2, "default", seed=-1, backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        VecToolEnv(2, "default", backend="cuda")


@pytest.mark.parametrize("make", [RustVecToolEnv, PyVecToolEnv, VecToolEnv])
def test_unknown_suite_lists_the_available_ones(make) -> None:
    with pytest.raises(
        ValueError,
        match=r"unknown suite 'nope'.*available suites: default, easy, expert, hard|unknown suite \"nope\".*available suites: default, easy, expert, hard",
    ):
        make(2, "nope")


def _suite_copy(tmp_path: Path) -> tuple[Path, dict]:
    shutil.copy(envs_dir() / "catalog.json", tmp_path / "catalog.json")
    doc = json.loads((envs_dir() / "suites" / "default.json").read_text())
    doc["catalog"] = "catalog.json"
    return tmp_path / "suite.json", doc


MALFORMED = [
    (lambda d: d.pop("episode_len"), "episode_len"),
    (lambda d: d.update(episode_len="long"), "episode_len"),
    (lambda d: d.update(num_args=0), "num_args"),
    (lambda d: d["rewards"].pop("completion"), "completion"),
    (lambda d: d["tasks"][1].update(goal=["no_such_fact"]), r"tasks\[1\]\.goal\[0\]"),
    (lambda d: d["tasks"][0].update(num_candidates=99), r"tasks\[0\]\.num_candidates"),
    (lambda d: d["tasks"][2].update(start=d["tasks"][2]["goal"]), r"tasks\[2\]\.goal"),
    (lambda d: d.update(tasks=[]), "tasks"),
    (lambda d: d["success_prob"].update(teleport=1.0), r"success_prob\.teleport"),
    (lambda d: d["success_prob"].update(pytest=1.5), r"success_prob\.pytest"),
    (lambda d: d.update(catalog="missing.json"), "catalog"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("corrupt", "field"), MALFORMED)
def test_malformed_suite_names_file_and_field(tmp_path: Path, backend: str, corrupt, field: str) -> None:
    path, doc = _suite_copy(tmp_path)
    corrupt(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=rf"{path}.*{field}"):
        VecToolEnv(2, path, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_malformed_catalog_names_file_and_field(tmp_path: Path, backend: str) -> None:
    path, doc = _suite_copy(tmp_path)
    path.write_text(json.dumps(doc))
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    catalog["tools"][4]["success_prob"] = "often"
    (tmp_path / "catalog.json").write_text(json.dumps(catalog))
    with pytest.raises(ValueError, match=r"catalog\.json.*tools\[4\]\.success_prob"):
        VecToolEnv(2, path, backend=backend)
    (tmp_path / "catalog.json").write_text("{ not json")
    with pytest.raises(ValueError, match=r"catalog\.json"):
        VecToolEnv(2, path, backend=backend)


def test_snapshot_and_restore_arguments(env) -> None:
    with pytest.raises(IndexError, match=r"env index must be an integer in \[0, 4\)"):
        env.snapshot(4)
    with pytest.raises(IndexError, match=r"env index must be an integer in \[0, 4\)"):
        env.restore(-1, env.snapshot(0))
    with pytest.raises(TypeError, match="state must be bytes"):
        env.restore(0, "not bytes")
    with pytest.raises(ValueError, match="bytes from snapshot"):
        env.restore(0, b"short")
    state = bytearray(env.snapshot(0))
    state[0:4] = b"XXXX"
    with pytest.raises(ValueError, match="bad magic"):
        env.restore(0, bytes(state))
    other = VecToolEnv(1, "hard", seed=0, backend="python")
    with pytest.raises(ValueError, match="another env configuration"):
        env.restore(0, other.snapshot(0))
