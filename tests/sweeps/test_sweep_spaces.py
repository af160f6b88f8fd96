"""Search spaces: unit-cube round trips stay inside bounds, keep their types, and bad specs fail clearly."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dspy_rl.sweeps.spaces import SearchSpace, SpaceError, make_param

SPEC = {
    "lr": {"space": "log", "min": 1e-5, "max": 1e-1},
    "gamma": {"space": "logit", "min": 0.9, "max": 0.9999},
    "batch": {"space": "pow2", "min": 16, "max": 1024},
    "epochs": {"space": "int", "min": 1, "max": 16},
    "act": {"space": "choice", "values": ["tanh", "relu", "gelu"]},
    "clip": {"space": "linear", "min": 0.1, "max": 0.3},
}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-0.5, max_value=1.5, allow_nan=False), min_size=6, max_size=6))
def test_from_unit_values_are_in_bounds_and_typed(u: list[float]) -> None:
    space = SearchSpace.from_spec(SPEC)
    config = space.from_unit(np.array(u))
    assert space.validate(config) == []
    assert isinstance(config["batch"], int) and config["batch"] & (config["batch"] - 1) == 0
    assert isinstance(config["epochs"], int)
    assert isinstance(config["lr"], float) and 1e-5 <= config["lr"] <= 1e-1
    assert 0.9 <= config["gamma"] <= 0.9999
    assert config["act"] in SPEC["act"]["values"]
    # snapping is idempotent: the snapped unit vector maps to the same config
    snapped = space.snap(np.array(u))
    assert space.from_unit(snapped) == config
    assert np.all((snapped >= 0) & (snapped <= 1))


def test_log_and_logit_spaces_are_uniform_in_the_transformed_value() -> None:
    space = SearchSpace.from_spec(SPEC)
    mid = space.from_unit(np.full(6, 0.5))
    assert math.isclose(mid["lr"], 1e-3, rel_tol=1e-9)  # geometric mean of 1e-5 and 1e-1
    assert math.isclose(1 - mid["gamma"], math.sqrt(0.1 * 1e-4), rel_tol=1e-9)
    assert mid["batch"] == 128  # log2 range 4..10, middle 7
    assert mid["epochs"] in (8, 9)
    assert mid["act"] == "relu"


def test_to_unit_inverts_from_unit_on_continuous_spaces() -> None:
    space = SearchSpace.from_spec({k: SPEC[k] for k in ("lr", "gamma", "clip")})
    rng = np.random.default_rng(0)
    for _ in range(50):
        u = rng.random(3)
        np.testing.assert_allclose(space.to_unit(space.from_unit(u)), u, atol=1e-9)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"space": "log", "min": 0.0, "max": 1.0}, "min > 0"),
        ({"space": "linear", "min": 2.0, "max": 1.0}, "min < max"),
        ({"space": "pow2", "min": 3, "max": 64}, "power of two"),
        ({"space": "logit", "min": 0.5, "max": 1.0}, "0 < min < max < 1"),
        ({"space": "int", "min": 0.5, "max": 3}, "integer bounds"),
        ({"space": "choice", "values": []}, "non-empty"),
        ({"space": "gaussian", "min": 0, "max": 1}, "choose one of"),
        ({"space": "linear", "min": 0}, "needs both"),
        ({"space": "linear", "min": 0, "max": 1, "scale": 2}, "unknown keys"),
        ({"space": "linear", "min": "a", "max": 1}, "must be a number"),
    ],
)
def test_bad_specs_raise_space_error_naming_the_parameter(spec: dict, match: str) -> None:
    with pytest.raises(SpaceError, match=match) as info:
        make_param("algo.lr", spec)
    assert "algo.lr" in str(info.value)


def test_validate_reports_out_of_space_values() -> None:
    space = SearchSpace.from_spec(SPEC)
    config = space.from_unit(np.full(6, 0.3))
    assert space.validate({**config, "batch": 48}) == ["batch"]
    assert space.validate({**config, "lr": 1.0}) == ["lr"]
    assert space.validate({**config, "act": "swish"}) == ["act"]
    assert space.validate({k: v for k, v in config.items() if k != "epochs"}) == ["epochs"]
    with pytest.raises(SpaceError, match="empty"):
        SearchSpace.from_spec({})


def test_vectorized_snap_matches_scalar_snap() -> None:
    space = SearchSpace.from_spec(SPEC)
    u = np.random.default_rng(0).random((500, 6)) * 1.4 - 0.2
    np.testing.assert_allclose(space.snap_batch(u), np.stack([space.snap(x) for x in u]), atol=1e-12)


def test_integer_setting_on_a_log_scale_samples_integers_the_train_config_accepts() -> None:
    """conf/sweep/ppo.yaml samples total_env_steps log-uniformly: every value must be an int (a float such as
    10320.38 makes the train config refuse the trial)."""
    import numpy as np

    from dspy_rl.cli.sweep import build_space, load_config
    from dspy_rl.sweeps.spaces import SpaceError, make_param
    from dspy_rl.trainer import load_config as train_config

    space = build_space(load_config([]))
    param = next(p for p in space.params if p.name == "total_env_steps")
    values = [param.from_unit(u) for u in np.random.default_rng(0).random(200)]
    assert all(type(v) is int and 8192 <= v <= 131072 for v in values)
    assert param.spec() == {"space": "log", "min": 8192, "max": 131072, "type": "int"}
    assert train_config([f"total_env_steps={values[0]}"]).total_env_steps == values[0]
    snapped = param.snap_unit(np.array([0.123, 0.777]))
    assert [param.from_unit(u) for u in snapped] == [param.from_unit(0.123), param.from_unit(0.777)]
    assert param.contains(values[0]) and not param.contains(values[0] + 0.5)
    with pytest.raises(SpaceError, match="integer bounds"):
        make_param("x", {"space": "log", "min": 1.5, "max": 10, "type": "int"})
    with pytest.raises(SpaceError, match="type='double'"):
        make_param("x", {"space": "linear", "min": 1, "max": 10, "type": "double"})
