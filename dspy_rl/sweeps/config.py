"""Configuration of a sweep (schema of ``conf/sweep.yaml`` and ``conf/sweep/<name>.yaml``) and its search space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from dspy_rl.config import ConfigError, compose, require, to_object
from dspy_rl.sweeps.registry import SEARCHERS
from dspy_rl.sweeps.spaces import SearchSpace, SpaceError

ALIASES = {
    "samples": "num_samples",
    "concurrent": "max_concurrent",
    "space": "sweep",
    "metric": "sweep.metric",
    "cost": "sweep.cost",
    "trials": "num_samples",
    "max_concurrent": "max_concurrent",
}


@dataclass
class SweepDef:
    """One sweep definition: a file of conf/sweep/ (selected with ``sweep=<name>``)."""

    name: str = "sweep"
    """Name of the sweep (its run directory is runs/sweep/<name>-<timestamp> unless run_dir is set)."""
    objective: str = "train"
    """``train`` (one PPO run per trial) or ``synthetic:<name>`` (see dspy_rl/sweeps/objectives.py)."""
    metric: str = "success_rate"
    """Result key to optimize (the trial's last reported value); for PPO sweeps ``eval_success_rate`` (the
    trained policy, evaluated with ``eval_episodes`` from ``fixed``) rather than the rolling
    ``success_rate``."""
    mode: str = "max"
    """``max`` or ``min``."""
    cost: str = "wall_s"
    """Result key that measures a trial's cost: ``wall_s`` or ``env_steps``."""
    fixed: list[str] = field(default_factory=list)
    """Hydra overrides of conf/train.yaml applied to every trial."""
    parameters: dict[str, Any] = field(default_factory=dict)
    """Name -> {space: linear|log|pow2|logit|int|choice, min, max | values}."""
    fidelity: str | None = None
    """The searched parameter that sets each trial's budget (e.g. ``total_env_steps``), or None. protein
    then runs its warm-up at its cheapest value and gives each model step the cheapest budget level the
    model is still uncertain about (multi-fidelity, dspy_rl/sweeps/fidelity.py); carbs refuses it; the
    others ignore it."""


@dataclass
class SweepConfig:
    """``conf/sweep.yaml``: searcher settings, trial count and concurrency, output directory."""

    sweep: SweepDef = field(default_factory=SweepDef)
    searcher: str = "protein"
    """Protein | carbs | random | optuna | pufferlib."""
    num_samples: int = 16
    """Trials in total."""
    max_concurrent: int = 2
    """Trials running at once."""
    seed: int = 0
    """Searcher seed."""
    num_warmup: int | None = None
    """Quasi-random suggestions before the model (None: max(4, 2 * number of parameters))."""
    max_suggestion_cost: float | None = None
    """Never propose points predicted to cost more than this (protein/carbs/pufferlib)."""
    cpus_per_trial: float = 1.0
    """CPUs reserved per trial."""
    run_dir: str | None = None
    """Output directory (None: runs/sweep/<sweep name>-<timestamp>)."""
    resume: bool = False
    """Continue the sweep stored in run_dir."""
    ray_address: str | None = None
    """None: local Ray in-process; "auto": a running cluster."""
    node_ip: str | None = None
    """Address of a local Ray instance (None: 127.0.0.1, so no Ray process listens on another interface)."""
    num_cpus: int | None = None
    """CPUs of the local Ray instance (None: all)."""
    plot: bool = True
    """Write pareto.png."""
    searcher_options: dict[str, Any] = field(default_factory=dict)
    """Extra protein/carbs constructor options."""

    def __post_init__(self) -> None:
        s = self.sweep
        require(self.searcher in SEARCHERS, "searcher", self.searcher, " | ".join(SEARCHERS))
        require(self.num_samples >= 1, "num_samples", self.num_samples, "an int >= 1")
        require(self.max_concurrent >= 1, "max_concurrent", self.max_concurrent, "an int >= 1")
        require(
            self.num_warmup is None or self.num_warmup >= 1, "num_warmup", self.num_warmup, "null or >= 1"
        )
        require(
            self.max_suggestion_cost is None or self.max_suggestion_cost > 0,
            "max_suggestion_cost",
            self.max_suggestion_cost,
            "null or a number > 0",
        )
        require(self.cpus_per_trial > 0, "cpus_per_trial", self.cpus_per_trial, "a number > 0")
        require(s.mode in ("max", "min"), "sweep.mode", s.mode, "max | min")
        require(
            s.objective == "train" or s.objective.startswith("synthetic:"),
            "sweep.objective",
            s.objective,
            "train | synthetic:<name>",
        )
        require(bool(s.metric), "sweep.metric", s.metric, "a reported result key, e.g. success_rate")
        require(bool(s.cost), "sweep.cost", s.cost, "wall_s | env_steps")
        require(
            s.fidelity is None or s.fidelity in s.parameters,
            "sweep.fidelity",
            s.fidelity,
            "null or one of the searched parameters",
        )
        require(
            s.fidelity is None or self.searcher != "carbs",
            "sweep.fidelity",
            s.fidelity,
            "null with searcher=carbs (its cost cap never rises above the observed costs, so it would stay at the "
            "cheapest budget of a fidelity warm-up): set sweep.fidelity=null or use searcher=protein",
        )
        require(
            self.objective != "train" or bool(s.parameters),
            "sweep.parameters",
            s.parameters,
            "a non-empty mapping",
        )
        if self.objective == "train" and s.metric.startswith("eval_"):
            episodes = [
                f.partition("=")[2] for f in s.fixed if f.partition("=")[0].lstrip("+") == "eval_episodes"
            ]
            require(
                bool(episodes) and episodes[-1].isdigit() and int(episodes[-1]) > 0,
                "sweep.metric",
                s.metric,
                "a metric of the trainer's final evaluation together with eval_episodes=<n > 0> in sweep.fixed",
            )
        if self.resume:
            require(
                self.run_dir is not None,
                "resume",
                self.resume,
                "resume=true together with run_dir=<sweep dir>",
            )

    @property
    def objective(self) -> str:
        return self.sweep.objective


def fidelity_option(cfg: SweepConfig) -> dict[str, Any]:
    """``{"fidelity": name}`` for protein when the sweep declares its budget parameter, else nothing."""
    if cfg.sweep.fidelity is None or cfg.searcher != "protein":
        return {}
    return {"fidelity": cfg.sweep.fidelity}


ConfigStore.instance().store(name="sweep_schema", node=SweepConfig)


def load_config(argv: Sequence[str] = ()) -> SweepConfig:
    """Compose conf/sweep.yaml with the command line and validate it."""
    cfg = compose("sweep", argv, ALIASES)
    return to_object(cfg, SweepConfig)


def build_space(cfg: SweepConfig) -> SearchSpace:
    """The search space: ``sweep.parameters``, or a synthetic objective's own space when that is empty."""
    spec = cfg.sweep.parameters
    if not spec and cfg.objective.startswith("synthetic:"):
        from dspy_rl.sweeps.objectives import get_objective

        try:
            spec = get_objective(cfg.objective.split(":", 1)[1]).space
        except KeyError as exc:
            raise ConfigError(f"sweep.objective={cfg.objective!r}: {exc.args[0]}") from exc
    try:
        return SearchSpace.from_spec(spec)
    except SpaceError as exc:
        raise ConfigError(f"sweep.parameters: {exc}") from exc
