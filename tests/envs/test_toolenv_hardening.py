"""The env core never panics and never aborts: the suite loader rejects anything after the JSON document in both
backends; num_envs/num_threads are bounded (ValueError with the figure); resizing, reshaping or retyping the env's
own output arrays gives a ValueError on the next step/reset/restore; and a property test steps and restores random
suites with random buffers and never sees a PanicException."""

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
from dspy_rl.envs.reference import MAX_NUM_ENVS, PyVecToolEnv

RustVecToolEnv = pytest.importorskip("dspy_rl._rust_env").VecToolEnv
BACKENDS = {"rust": RustVecToolEnv, "python": PyVecToolEnv}
SUITE_TEXT = (envs_dir() / "suites" / "easy.json").read_text()


def _is_panic(exc: BaseException) -> bool:
    return type(exc).__name__ == "PanicException"


def _suite_file(tmp: Path, suffix: str) -> Path:
    """The easy suite as a file, followed by ``suffix``."""
    doc = json.loads(SUITE_TEXT)
    doc["catalog"] = str(envs_dir() / "catalog.json")
    path = tmp / "suite.json"
    path.write_text(json.dumps(doc) + suffix)
    return path


@pytest.mark.parametrize("suffix", ["x", "{}", "[1]", "\x00", " 0", '\n{"name": "second"}', ",", "]"])
def test_trailing_bytes_after_the_document_are_rejected_by_both_backends(tmp_path: Path, suffix: str) -> None:
    path = _suite_file(tmp_path, suffix)
    for name, make in BACKENDS.items():
        with pytest.raises(ValueError) as err:
            make(2, str(path), seed=0)
        assert str(path) in str(err.value), (name, str(err.value))


@pytest.mark.parametrize("suffix", ["", "\n", "  \r\n\t "])
def test_trailing_whitespace_is_accepted_by_both_backends(tmp_path: Path, suffix: str) -> None:
    path = _suite_file(tmp_path, suffix)
    for make in BACKENDS.values():
        assert make(2, str(path), seed=0).num_envs == 2


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize(
    ("kwargs", "figure"),
    [
        ({"num_envs": MAX_NUM_ENVS + 1}, str(MAX_NUM_ENVS + 1)),
        ({"num_envs": 2**62}, str(2**62)),
        ({"num_envs": 0}, "got 0"),
        ({"num_envs": 2, "num_threads": 100_000}, "100000"),
    ],
)
def test_sizes_are_bounded_with_the_figure(backend: str, kwargs: dict, figure: str) -> None:
    with pytest.raises(ValueError, match=figure):
        BACKENDS[backend](suite="easy", seed=0, **kwargs)


MUTATIONS = {
    "resize": lambda e: e.obs.resize((1, 1), refcheck=False),
    "grow": lambda e: e.rewards.resize((10_000,), refcheck=False),
    "retype": lambda e: setattr(e.rewards, "dtype", np.uint8),
    "reshape": lambda e: setattr(e.tool_mask, "shape", (e.tool_mask.size,)),
    "transpose_shape": lambda e: setattr(e.obs, "shape", (e.obs.shape[1], e.obs.shape[0])),
    "retype_bool": lambda e: setattr(e.terminated, "dtype", np.int8),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
@pytest.mark.parametrize("call", ["step", "reset", "restore"])
def test_changed_output_arrays_are_a_value_error_not_a_panic(mutation: str, call: str) -> None:
    env = RustVecToolEnv(4, "easy", seed=0)
    snap = env.snapshot(1)
    MUTATIONS[mutation](env)
    with pytest.raises(ValueError, match="was changed in place"):
        if call == "step":
            env.step(*env.oracle_actions())
        elif call == "reset":
            env.reset(seed=3)
        else:
            env.restore(1, snap)


# ---- property test -------------------------------------------------------------------------------------------

JSON_LEAF = (
    st.none() | st.booleans() | st.integers(-5, 70) | st.integers(-(2**70), 2**70) | st.text(max_size=6)
)
ARRAY_DTYPES = [np.int64, np.int32, np.int16, np.uint8, np.float32, np.float64, np.bool_]


def _mutated_suite(data) -> str:
    doc = json.loads(SUITE_TEXT)
    doc["catalog"] = str(envs_dir() / "catalog.json")
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(0, 2))):
        keys = [k for k in doc if k != "catalog"]
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        value = doc[key]
        if isinstance(value, list) and value and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(value) - 1))
            if isinstance(value[i], dict) and value[i]:
                sub = data.draw(st.sampled_from(sorted(value[i])))
                value[i][sub] = data.draw(JSON_LEAF)
            else:
                value[i] = data.draw(JSON_LEAF)
        else:
            doc[key] = data.draw(JSON_LEAF)
    text = json.dumps(doc)
    return text + data.draw(st.sampled_from(["", "", "\n", "x", "{}"]))


def _random_actions(data, n: int, limit: int) -> np.ndarray:
    dtype = data.draw(st.sampled_from(ARRAY_DTYPES))
    shape = data.draw(st.sampled_from([(n,), (n,), (n,), (n + 1,), (max(n - 1, 0),), (n, 1), ()]))
    values = data.draw(
        st.lists(st.integers(-3, limit + 3) | st.integers(-(2**40), 2**40), min_size=1, max_size=8)
    )
    flat = np.resize(np.array(values, dtype=np.float64), int(np.prod(shape)) if shape else 1)
    with np.errstate(all="ignore"):
        return flat.astype(dtype).reshape(shape)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_suites_buffers_and_restores_never_panic(data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.json"
        path.write_text(_mutated_suite(data))
        n = data.draw(st.integers(1, 6))
        mode = data.draw(st.sampled_from(["error", "penalty"]))
        try:
            env = RustVecToolEnv(n, str(path), seed=data.draw(st.integers(0, 2**64 - 1)), invalid_action=mode,
                                 num_threads=data.draw(st.integers(0, 3)))  # fmt: skip
        except BaseException as exc:
            assert not _is_panic(exc), exc
            assert isinstance(exc, ValueError | TypeError), repr(exc)
            return
    snaps = [env.snapshot(i) for i in range(n)]
    for _ in range(data.draw(st.integers(1, 12))):
        op = data.draw(
            st.sampled_from(["step", "step", "oracle", "restore", "restore_bad", "mutate", "reset"])
        )
        try:
            if op == "step":
                env.step(_random_actions(data, n, env.num_tools), _random_actions(data, n, env.num_args))
            elif op == "oracle":
                env.step(*env.oracle_actions())
            elif op == "restore":
                env.restore(data.draw(st.integers(-1, n)), snaps[data.draw(st.integers(0, n - 1))])
            elif op == "restore_bad":
                good = bytearray(snaps[0])
                blob = data.draw(st.binary(max_size=80) | st.just(bytes(good)))
                if blob and data.draw(st.booleans()):
                    blob = bytearray(blob)
                    blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
                env.restore(data.draw(st.integers(0, n - 1)), bytes(blob))
            elif op == "mutate":
                MUTATIONS[data.draw(st.sampled_from(sorted(MUTATIONS)))](env)
            else:
                env.reset(seed=data.draw(st.none() | st.integers(0, 2**64 - 1)))
        except BaseException as exc:
            assert not _is_panic(exc), f"{op}: {exc}"
            assert isinstance(exc, ValueError | TypeError | IndexError), f"{op}: {exc!r}"
