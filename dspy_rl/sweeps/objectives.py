"""Cost-aware synthetic objectives with a known optimum, for tests, the benchmark and ``objective=synthetic:<name>``.

Every objective maps a config to ``(score, cost)``: the score is in [0, 1] with known maximum 1.0 (``optimum``);
the cost is positive and grows with some parameters (a training budget, a model width), as in real sweeps where
the best scores need expensive runs. ``score`` is ``None`` for a failed run (e.g. a diverging learning rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Score = float | None


@dataclass(frozen=True)
class SyntheticObjective:
    """A named objective: its search space spec, its function, its optimum (max score) and its budget parameter
    (``fidelity``: more of it costs more and raises the score, like a training budget), if it has one."""

    name: str
    description: str
    space: dict[str, dict[str, Any]]
    fn: Callable[[Mapping[str, Any]], tuple[Score, float]]
    optimum: float = 1.0
    fidelity: str | None = None

    def __call__(self, config: Mapping[str, Any]) -> tuple[Score, float]:
        return self.fn(config)


def _saturation(budget: float, scale: float, max_budget: float) -> float:
    """Learning-curve shape: 0 at no budget, 1 at ``max_budget``, diminishing returns with scale ``scale``."""
    return (1.0 - math.exp(-budget / scale)) / (1.0 - math.exp(-max_budget / scale))


def _ppo_like(c: Mapping[str, Any]) -> tuple[Score, float]:
    """An RL-training caricature: the best lr scales with sqrt(batch); gamma, epochs, activation matter; runs
    with lr > 0.03 diverge; cost is env steps times (1 + epochs / 4)."""
    lr, gamma, batch = float(c["lr"]), float(c["gamma"]), int(c["batch"])
    epochs, act, steps = int(c["epochs"]), c["activation"], float(c["steps"])
    if lr > 0.03:
        return None, steps * (1 + epochs / 4) * 0.1  # diverged early: a tenth of the run was paid for
    best_log_lr = math.log10(3e-4) + 0.5 * math.log10(batch / 64)
    s_lr = math.exp(-0.5 * ((math.log10(lr) - best_log_lr) / 0.35) ** 2)
    s_gamma = math.exp(-0.5 * ((math.log10(1 - gamma) - math.log10(1 - 0.99)) / 0.5) ** 2)
    s_epochs = math.exp(-0.5 * ((epochs - 4) / 3.0) ** 2)
    s_act = {"tanh": 0.93, "relu": 1.0, "gelu": 0.97}[act]
    score = s_lr * s_gamma * s_epochs * s_act * _saturation(steps, 2e5, 1e6)
    return score, steps * (1 + epochs / 4)


def _branin(c: Mapping[str, Any]) -> tuple[Score, float]:
    """Branin (minima 0.397887 at three points) plus an ``epochs`` fidelity: score saturates, cost grows linearly."""
    x1, x2, epochs = float(c["x1"]), float(c["x2"]), int(c["epochs"])
    b = (
        (x2 - 5.1 / (4 * math.pi**2) * x1**2 + 5 / math.pi * x1 - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1)
        + 10
    )
    score = math.exp(-(b - 0.397887) / 8.0) * _saturation(epochs, 10.0, 64)
    return score, float(epochs)


_H_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_H_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
_H_ALPHA = [1.0, 1.2, 3.0, 3.2]
_H_MIN = -3.32237


def _hartmann6(c: Mapping[str, Any]) -> tuple[Score, float]:
    """Hartmann-6 (min -3.32237) with a ``width`` that scales capacity and cost: score = -H/3.32 * capacity(width)."""
    x = [float(c[f"x{i}"]) for i in range(1, 7)]
    width = int(c["width"])
    h = -sum(
        a * math.exp(-sum(_H_A[i][j] * (x[j] - _H_P[i][j]) ** 2 for j in range(6)))
        for i, a in enumerate(_H_ALPHA)
    )
    capacity = _saturation(width, 48.0, 512)
    return (h / _H_MIN) * capacity, width / 8.0 * (1.0 + x[5])


OBJECTIVES: dict[str, SyntheticObjective] = {
    "ppo_like": SyntheticObjective(
        name="ppo_like",
        description="RL-training caricature over log/logit/pow2/int/choice spaces; cost = steps * (1 + epochs/4)",
        space={
            "lr": {"space": "log", "min": 1e-5, "max": 1e-1},
            "gamma": {"space": "logit", "min": 0.9, "max": 0.9999},
            "batch": {"space": "pow2", "min": 16, "max": 1024},
            "epochs": {"space": "int", "min": 1, "max": 16},
            "activation": {"space": "choice", "values": ["tanh", "relu", "gelu"]},
            "steps": {"space": "log", "min": 1e4, "max": 1e6},
        },
        fn=_ppo_like,
        fidelity="steps",
    ),
    "branin": SyntheticObjective(
        name="branin",
        description="Branin in 2-D with an epochs fidelity (int 1..64); cost = epochs",
        space={
            "x1": {"space": "linear", "min": -5.0, "max": 10.0},
            "x2": {"space": "linear", "min": 0.0, "max": 15.0},
            "epochs": {"space": "int", "min": 1, "max": 64},
        },
        fn=_branin,
        fidelity="epochs",
    ),
    "hartmann6": SyntheticObjective(
        name="hartmann6",
        description="Hartmann-6 times a capacity curve of width (pow2 8..512); cost = width/8 * (1 + x6)",
        space={
            **{f"x{i}": {"space": "linear", "min": 0.0, "max": 1.0} for i in range(1, 7)},
            "width": {"space": "pow2", "min": 8, "max": 512},
        },
        fn=_hartmann6,
        fidelity="width",
    ),
}


def get_objective(name: str) -> SyntheticObjective:
    """The objective named ``name``; the error lists the available ones."""
    if name not in OBJECTIVES:
        raise KeyError(f"unknown synthetic objective {name!r}; choose one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
