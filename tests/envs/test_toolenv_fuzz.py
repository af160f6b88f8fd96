"""Property/fuzz tests: random action streams and random or corrupted suite files through the Rust core.

Everything must either work or raise a Python exception (never crash the interpreter), and the Rust core
must agree with the Python reference: same outputs for the same action stream, same accept/reject verdict
for the same suite file.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dspy_rl import envs_dir
from dspy_rl.envs import BUFFER_NAMES
from dspy_rl.envs.reference import PyVecToolEnv

RustVecToolEnv = pytest.importorskip(
    "dspy_rl._rust_env", reason="run `maturin develop --release` to build it"
).VecToolEnv

CATALOG = json.loads((envs_dir() / "catalog.json").read_text())
SUITE = json.loads((envs_dir() / "suites" / "default.json").read_text())
SUITE["catalog"] = "catalog.json"
NAMES = CATALOG["facts"] + [t["name"] for t in CATALOG["tools"]]

INT64 = st.integers(-(2**63), 2**63 - 1)
SMALL = st.integers(-3, 20)
JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.integers(-2, 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(NAMES)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _mutate(doc, data) -> object:
    """Apply 1-3 random edits (delete, replace, duplicate into a list) at random places of a JSON document."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return data.draw(JSON_VALUES)
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        op = data.draw(st.sampled_from(["delete", "replace", "replace", "append"]))
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace" or not isinstance(parent[path[-1]], list):
            parent[path[-1]] = data.draw(JSON_VALUES)
        else:
            parent[path[-1]].append(data.draw(JSON_VALUES))
    return doc


def _verdict(make, path: Path):
    try:
        return make(3, str(path), seed=1, invalid_action="penalty"), None
    except ValueError as exc:  # SuiteError is a ValueError
        assert str(path) in str(exc) or "catalog" in str(exc), f"error does not name the file: {exc}"
        return None, exc


def _check_file_pair(suite_text: str | bytes, catalog_text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite_path = Path(tmp) / "suite.json"
        for path, text in ((suite_path, suite_text), (Path(tmp) / "catalog.json", catalog_text)):
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
        rust, rust_err = _verdict(RustVecToolEnv, suite_path)
        python, py_err = _verdict(PyVecToolEnv, suite_path)
    assert (rust is None) == (python is None), f"rust: {rust_err!r}; python: {py_err!r}"
    if rust is None:
        return
    rng = np.random.default_rng(0)
    for _ in range(5):
        tools = rng.integers(-1, rust.num_tools + 1, size=3)
        args = rng.integers(-1, rust.num_args + 1, size=3)
        rust.step(tools, args)
        python.step(tools, args)
        for name in BUFFER_NAMES:
            np.testing.assert_array_equal(getattr(rust, name), getattr(python, name), err_msg=name)


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.data())
def test_corrupted_suite_files(data) -> None:
    _check_file_pair(json.dumps(_mutate(SUITE, data)), json.dumps(CATALOG))


@FUZZ
@given(st.data())
def test_corrupted_catalog_files(data) -> None:
    _check_file_pair(json.dumps(SUITE), json.dumps(_mutate(CATALOG, data)))


@settings(max_examples=60, deadline=None)
@given(
    st.binary(max_size=64)
    | st.text(max_size=64).map(str.encode)
    | JSON_VALUES.map(lambda v: json.dumps(v).encode())
)
def test_garbage_suite_files(blob: bytes) -> None:
    _check_file_pair(blob, json.dumps(CATALOG))


ACTION_STREAMS = st.lists(
    st.tuples(
        st.lists(SMALL | INT64, min_size=4, max_size=4), st.lists(SMALL | INT64, min_size=4, max_size=4)
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=80, deadline=None)
@given(ACTION_STREAMS, st.sampled_from(["easy", "default", "hard"]), st.sampled_from([np.int32, np.int64]))
def test_random_action_streams_penalty_mode(stream, suite: str, dtype) -> None:
    rust = RustVecToolEnv(4, suite, seed=2, invalid_action="penalty")
    python = PyVecToolEnv(4, suite, seed=2, invalid_action="penalty")
    for tools, args in stream:
        t = np.asarray(tools, dtype=np.int64)
        a = np.asarray(args, dtype=np.int64)
        if dtype is np.int32:
            t, a = (
                np.clip(t, -(2**31), 2**31 - 1).astype(np.int32),
                np.clip(a, -(2**31), 2**31 - 1).astype(np.int32),
            )
        rust.step(t, a)
        python.step(t, a)
        for name in BUFFER_NAMES:
            np.testing.assert_array_equal(getattr(rust, name), getattr(python, name), err_msg=name)


@settings(max_examples=80, deadline=None)
@given(ACTION_STREAMS, st.sampled_from(["easy", "default", "hard"]))
def test_random_action_streams_error_mode(stream, suite: str) -> None:
    """Error mode: both backends reject the same steps with the same message and stay in lockstep."""
    rust = RustVecToolEnv(4, suite, seed=5)
    python = PyVecToolEnv(4, suite, seed=5)
    for tools, args in stream:
        t, a = np.asarray(tools, dtype=np.int64), np.asarray(args, dtype=np.int64)
        errors = []
        for env in (rust, python):
            try:
                env.step(t, a)
                errors.append(None)
            except ValueError as exc:
                errors.append(str(exc))
        assert errors[0] == errors[1]
        for name in BUFFER_NAMES:
            np.testing.assert_array_equal(getattr(rust, name), getattr(python, name), err_msg=name)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=80), st.integers(0, 56), st.binary(min_size=1, max_size=8))
def test_corrupted_snapshots(blob: bytes, offset: int, patch: bytes) -> None:
    """Random bytes and bit-flipped real snapshots: restore works or raises, the same way in both backends."""
    rust = RustVecToolEnv(2, "default", seed=0)
    python = PyVecToolEnv(2, "default", seed=0)
    real = bytearray(rust.snapshot(1))
    real[offset : offset + len(patch)] = patch
    for state in (blob, bytes(real)):
        verdicts = []
        for env in (rust, python):
            try:
                env.restore(0, state)
                verdicts.append(None)
            except ValueError as exc:
                verdicts.append(str(exc))
        assert verdicts[0] == verdicts[1]
        for name in BUFFER_NAMES:
            np.testing.assert_array_equal(getattr(rust, name), getattr(python, name), err_msg=name)


@st.composite
def random_suites(draw) -> tuple[dict, dict]:
    """Structurally valid random catalogs and suites (goals may still be unreachable: then both must reject)."""
    num_facts = draw(st.integers(1, 10))
    facts = [f"f{i}" for i in range(num_facts)]
    subset = st.lists(st.sampled_from(facts), max_size=3, unique=True)
    tools = [
        {
            "name": f"t{j}",
            "takes_arg": draw(st.booleans()),
            "requires": draw(subset),
            "adds": draw(st.lists(st.sampled_from(facts), min_size=1, max_size=2, unique=True)),
            "success_prob": draw(st.sampled_from([1.0, 0.9, 0.5, 0.25, 0.0])),
        }
        for j in range(draw(st.integers(1, 8)))
    ]
    num_args = draw(st.integers(1, 6))
    tasks = [
        {
            "name": f"task{k}",
            "start": draw(subset),
            "goal": draw(st.lists(st.sampled_from(facts), min_size=1, max_size=3, unique=True)),
            "num_candidates": draw(st.integers(1, num_args)),
        }
        for k in range(draw(st.integers(1, 4)))
    ]
    reward = st.floats(-5, 5, allow_nan=False)
    suite = {
        "name": "random",
        "catalog": "catalog.json",
        "episode_len": draw(st.integers(1, 12)),
        "num_args": num_args,
        "rewards": {
            k: draw(reward)
            for k in ("success", "failure", "empty", "invalid", "step_cost", "shaping", "completion")
        },
        "success_prob": {},
        "tasks": tasks,
    }
    catalog = {"facts": facts, "target_fact": draw(st.sampled_from(facts)), "tools": tools}
    return suite, catalog


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_suites())
def test_random_valid_suites_step_identically(pair) -> None:
    """Random suites: same verdict, then same plans (oracle actions) and dynamics in both backends."""
    suite, catalog = pair
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.json"
        path.write_text(json.dumps(suite))
        (Path(tmp) / "catalog.json").write_text(json.dumps(catalog))
        rust, rust_err = _verdict(RustVecToolEnv, path)
        python, py_err = _verdict(PyVecToolEnv, path)
    assert (rust is None) == (python is None), f"rust: {rust_err!r}; python: {py_err!r}"
    if rust is None:
        return
    rng = np.random.default_rng(0)
    for step in range(30):
        oracle = rust.oracle_actions()
        for got, want in zip(oracle, python.oracle_actions(), strict=True):
            np.testing.assert_array_equal(got, want)
        if step % 2:
            tools, args = oracle
        else:
            tools = rng.integers(0, rust.num_tools, size=3)
            args = rng.integers(0, rust.num_args, size=3)
        rust.step(tools, args)
        python.step(tools, args)
        for name in BUFFER_NAMES:
            np.testing.assert_array_equal(getattr(rust, name), getattr(python, name), err_msg=name)
