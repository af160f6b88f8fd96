"""The multi-fidelity budget rule (dspy_rl/sweeps/fidelity.py) on a hand-made predictor, budget levels, carbs refusing it,
and the score GP's budget kernel (dspy_rl/sweeps/gp.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dspy_rl.sweeps.carbs import CarbsSearcher
from dspy_rl.sweeps.fidelity import cheapest_uncertain_level, next_level_up
from dspy_rl.sweeps.gp import ExactGP
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


def _curve_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (a, z): one configuration (a=0.8) run at five budgets z, rising then collapsing (which makes a plain
    kernel's budget lengthscale short), and a region a < 0.3 run at the cheapest budget only, at the floor."""
    curve = [(0.0, 0.25), (0.25, 0.35), (0.5, 0.5), (0.75, 0.45), (1.0, 0.05)]
    floor = [(a, 0.0, 0.03) for a in np.linspace(0.0, 0.3, 6)]
    rows = [(0.8, z, y) for z, y in curve] + [(0.55, 0.0, 0.2), (0.65, 0.0, 0.22)] + floor
    data = torch.tensor(rows, dtype=torch.float64)
    return data[:, :2], data[:, 2]


def test_budget_kernel_carries_cheap_evidence_to_the_top_budget() -> None:
    x, y = _curve_data()
    top_of = lambda a: torch.tensor([[a, 1.0]], dtype=torch.float64)  # noqa: E731
    shared = ExactGP(fidelity_dim=1).fit(x, y)
    plain = ExactGP().fit(x, y)
    assert 0.0 < 1.0 / (1.0 + math.exp(-shared.hyper.logit_bias)) < 1.0
    # the floor region at the top budget: the shared part carries its cheap results (0.03) up, so the model expects
    # little there, where the plain kernel (which has learned that budgets are unrelated) reverts to the mean (0.17)
    mu_s, sd_s = (float(v[0]) for v in shared.predict(top_of(0.15)))
    mu_p, sd_p = (float(v[0]) for v in plain.predict(top_of(0.15)))
    assert mu_s - 0.03 < 0.6 * (mu_p - 0.03), (mu_s, mu_p)
    assert sd_s / shared.prior_std < sd_p / plain.prior_std
    assert mu_s + 1.5 * sd_s < mu_p + 1.5 * sd_p  # the UCB protein ranks candidates by at the top budget
    # observed points are still fit, the collapse at the top budget included, and far away the prior holds
    mu, _ = shared.predict(x)
    assert torch.allclose(mu, y, atol=0.05)
    _, sd_far = shared.predict(torch.tensor([[5.0, 5.0]], dtype=torch.float64))
    assert float(sd_far[0]) == pytest.approx(shared.prior_std, rel=1e-3)


def test_budget_kernel_rejects_a_bad_input_index() -> None:
    x, y = _curve_data()
    with pytest.raises(ValueError, match="fidelity_dim=2 is not an input index"):
        ExactGP(fidelity_dim=2).fit(x, y)


def test_fidelity_searcher_uses_the_budget_kernel_and_restores_its_fit(tmp_path) -> None:
    spec = {
        "lr": {"space": "log", "min": 1e-5, "max": 1e-1},
        "steps": {"space": "pow2", "min": 1024, "max": 16384},
    }
    s = ProteinSearcher(spec, metric="score", mode="max", cost_metric="cost", seed=0, fidelity="steps")
    assert s._score_gp.fidelity_dim == 1 and s._cost_gp.fidelity_dim is None
    for i in range(8):
        c = s.suggest(f"t{i}")
        score = float(np.exp(-((np.log10(c["lr"]) + 2.0) ** 2)) * np.log2(c["steps"]) / 14.0)
        s.on_trial_complete(f"t{i}", {"score": score, "cost": float(c["steps"])})
    assert s._score_gp.hyper.logit_bias is not None
    s.save(str(tmp_path / "state.pkl"))
    r = ProteinSearcher(spec, metric="score", mode="max", cost_metric="cost", seed=0, fidelity="steps")
    r.restore(str(tmp_path / "state.pkl"))
    assert r._score_gp.fidelity_dim == 1
    assert r._score_gp.hyper == s._score_gp.hyper
    s._fitted_on = r._fitted_on  # both condition on the same data with the saved fit (no refit)
    grid = np.array([[u, z] for u in np.linspace(0, 1, 5) for z in s.fidelity_levels()])
    expect = s._predict(s._model_context(s._successes()), grid)
    for a, b in zip(r._predict(r._model_context(r._successes()), grid), expect, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
