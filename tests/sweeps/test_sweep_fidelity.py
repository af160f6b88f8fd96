"""The multi-fidelity budget rule (dspy_rl/sweeps/fidelity.py) on a hand-made predictor, budget levels, carbs refusing it."""

from __future__ import annotations

import numpy as np
import pytest

from dspy_rl.sweeps.carbs import CarbsSearcher
from dspy_rl.sweeps.fidelity import cheapest_uncertain_level, next_level_up
from dspy_rl.sweeps.protein import ProteinSearcher

LEVELS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])


def fake_predictor(sd_by_level: dict[float, float], cost_by_level: dict[float, float]):
    """Score std and log-cost that depend on the budget coordinate (index 1) only."""

    def predict(cands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z = [round(float(v), 6) for v in cands[:, 1]]
        sd = np.array([sd_by_level[v] for v in z])
        log_cost = np.log(np.array([cost_by_level[v] for v in z]))
        return np.zeros(len(z)), sd, log_cost

    return predict


COST = {0.0: 1.0, 0.25: 2.0, 0.5: 4.0, 0.75: 8.0, 1.0: 16.0}


def test_picks_the_cheapest_level_the_model_is_uncertain_about() -> None:
    # threshold at level l (xi=0.5, prior 1, q=1/3): 0.5 * (cost_l / 16) ** (1/3) = 0.198, 0.25, 0.315, 0.397
    sd = {0.0: 0.1, 0.25: 0.3, 0.5: 0.9, 0.75: 0.9, 1.0: 1.0}
    x = np.array([0.4, 1.0])
    assert cheapest_uncertain_level(x, 1, LEVELS, fake_predictor(sd, COST), prior_sd=1.0) == 0.25
    # the same std at the cheapest level passes its (smaller) threshold once it exceeds it
    sd[0.0] = 0.21
    assert cheapest_uncertain_level(x, 1, LEVELS, fake_predictor(sd, COST), prior_sd=1.0) == 0.0
    # a larger xi raises every threshold: only the dearer, more uncertain levels qualify
    assert cheapest_uncertain_level(x, 1, LEVELS, fake_predictor(sd, COST), prior_sd=1.0, xi=1.2) == 0.5


def test_keeps_the_proposed_budget_when_every_cheaper_level_is_known_and_never_raises_it() -> None:
    known = {0.0: 0.01, 0.25: 0.01, 0.5: 0.01, 0.75: 0.01, 1.0: 1.0}
    assert cheapest_uncertain_level(np.array([0.4, 1.0]), 1, LEVELS, fake_predictor(known, COST), 1.0) == 1.0
    unsure = dict.fromkeys(LEVELS.tolist(), 1.0)
    # proposed at 0.5: only 0.0 and 0.25 are candidates, and the rule picks the cheapest
    assert cheapest_uncertain_level(np.array([0.4, 0.5]), 1, LEVELS, fake_predictor(unsure, COST), 1.0) == 0.0
    # proposed at the cheapest level: nothing cheaper to choose
    assert cheapest_uncertain_level(np.array([0.4, 0.0]), 1, LEVELS, fake_predictor(unsure, COST), 1.0) == 0.0


def test_never_goes_more_than_one_level_above_the_dearest_budget_run() -> None:
    known = {0.0: 0.01, 0.25: 0.01, 0.5: 0.01, 0.75: 0.01, 1.0: 1.0}
    predict = fake_predictor(known, COST)
    assert next_level_up(LEVELS, np.array([0.0, 0.25, 0.0])) == 0.5
    assert next_level_up(LEVELS, np.array([1.0])) == 1.0
    assert next_level_up(LEVELS, np.array([])) == 0.25
    # the model claims to know every level below the top, but only 0.0 and 0.25 have been run: 0.5, not the top
    x = np.array([0.4, 1.0])
    assert cheapest_uncertain_level(x, 1, LEVELS, predict, 1.0, ceiling=0.5) == 0.5
    # an uncertain level below the ceiling is still preferred
    known[0.25] = 0.9
    assert cheapest_uncertain_level(x, 1, LEVELS, fake_predictor(known, COST), 1.0, ceiling=0.5) == 0.25


def test_rejects_bad_settings() -> None:
    predict = fake_predictor(dict.fromkeys(LEVELS.tolist(), 1.0), COST)
    with pytest.raises(ValueError, match="xi > 0"):
        cheapest_uncertain_level(np.array([0.4, 1.0]), 1, LEVELS, predict, 1.0, xi=0.0)


def test_carbs_refuses_a_fidelity_parameter_with_a_message() -> None:
    space = {
        "lr": {"space": "log", "min": 1e-5, "max": 1e-1},
        "steps": {"space": "pow2", "min": 1024, "max": 16384},
    }
    with pytest.raises(ValueError, match="use ProteinSearcher for a fidelity sweep"):
        CarbsSearcher(space, metric="score", mode="max", cost_metric="cost", fidelity="steps")
    CarbsSearcher(
        space, metric="score", mode="max", cost_metric="cost"
    )  # the budget as an ordinary parameter


def test_every_value_of_a_pow2_budget_is_a_level() -> None:
    spec = {
        "lr": {"space": "log", "min": 1e-5, "max": 1e-1},
        "steps": {"space": "pow2", "min": 8192, "max": 524288},
    }
    s = ProteinSearcher(spec, metric="score", mode="max", cost_metric="cost", fidelity="steps")
    budgets = [s.space.from_unit(np.array([0.5, u]))["steps"] for u in s.fidelity_levels()]
    assert budgets == [8192 * 2**k for k in range(7)]
    s = ProteinSearcher({**spec, "steps": {"space": "log", "min": 1e3, "max": 1e6}}, fidelity="steps")
    assert len(s.fidelity_levels()) == 5  # continuous: 5 levels spread over the range
