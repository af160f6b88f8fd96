"""The searchers inside real Ray Tune runs: ConcurrencyLimiter, errored trials, Tuner.restore, and the CLI."""

from __future__ import annotations

import glob
import json
import os
import pickle
import signal
import sys

import cloudpickle
import pytest
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from dspy_rl.cli.sweep import main as sweep_main
from dspy_rl.config import ConfigError
from dspy_rl.sweeps.objectives import get_objective
from dspy_rl.sweeps.protein import ProteinSearcher
from dspy_rl.sweeps.trainables import synthetic_trainable

# Tuner.restore unpickles the searcher from the experiment; pickle this module's classes by value so that works
# whatever name pytest imported it under.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class InterruptingProtein(ProteinSearcher):
    """Protein that interrupts the experiment like Ctrl-C once it has recorded ``interrupt_at`` observations, while
    ``flag`` exists, and then suggests nothing more: the saved state holds ``interrupt_at`` observations, plus at
    most the other trial that was running (whether it finishes before Tune's loop exits depends on timing).

    Tune handles SIGUSR1 like SIGINT (save the experiment state, end ``fit()``, resumable); a stopper's
    ``stop_all`` instead marks the search finished, which a restore would not continue.
    """

    def __init__(self, *args, interrupt_at: int, flag: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.interrupt_at, self.flag, self.sent = interrupt_at, flag, False

    def _interrupting(self) -> bool:
        return self.sent and os.path.exists(self.flag)

    def suggest(self, trial_id: str) -> dict | None:
        return None if self._interrupting() else super().suggest(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        super().on_trial_complete(trial_id, result, error)
        if not self.sent and len(self.observations) >= self.interrupt_at and os.path.exists(self.flag):
            assert callable(signal.getsignal(signal.SIGUSR1)), "Tune's SIGUSR1 handler is not installed"
            os.kill(os.getpid(), signal.SIGUSR1)
            self.sent = True


def _searcher_state(exp_dir: str) -> dict:
    path = max(glob.glob(os.path.join(exp_dir, "searcher-state-*.pkl")))
    with open(path, "rb") as f:
        return pickle.load(f)


def test_tuner_restore_continues_the_sweep_with_its_model(ray_session, tmp_path) -> None:
    flag = tmp_path / "interrupt"
    flag.touch()
    searcher = InterruptingProtein(
        get_objective("branin").space,
        metric="score",
        mode="max",
        cost_metric="cost",
        num_warmup=3,
        seed=0,
        interrupt_at=4,
        flag=str(flag),
    )
    trainable = tune.with_parameters(synthetic_trainable, objective="branin")
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=2),
            num_samples=7,
            metric="score",
            mode="max",
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name="exp", storage_path=str(tmp_path), verbose=0),
    )
    tuner.fit()
    exp_dir = str(tmp_path / "exp")
    first = _searcher_state(exp_dir)
    assert len(first["observations"]) in (4, 5)  # 5: the other running trial finished before the loop exited
    assert len(first["observations"]) + len(first["pending"]) <= 5  # nothing suggested after the interrupt
    assert first["model_steps"] >= 1  # the GP was already in use before the interruption

    flag.unlink()
    grid = tune.Tuner.restore(exp_dir, trainable=trainable).fit()
    assert len(grid) == 7 and not grid.errors
    second = _searcher_state(exp_dir)
    assert len(second["observations"]) == 7 and not second["pending"]
    first_ids = {o["trial_id"] for o in first["observations"]}
    assert first_ids <= {o["trial_id"] for o in second["observations"]}
    # Continued, not restarted: the Sobol position and the model-step counter carry on from the checkpoint.
    assert second["sobol_drawn"] == first["sobol_drawn"]
    assert second["model_steps"] > first["model_steps"]
    configs = {tuple(sorted(o["config"].items())) for o in second["observations"]}
    assert len(configs) == 7


def test_cli_sweep_runs_trials_with_failures_and_writes_table_plot_and_results(
    ray_session, tmp_path, capsys
) -> None:
    run_dir = tmp_path / "sweep"
    argv = ["sweep=ppo_like", "--samples", "6", "--concurrent", "2", "num_warmup=4", f"run_dir={run_dir}"]
    assert sweep_main(argv) == 0
    out = capsys.readouterr().out
    assert "best config: " in out and "activation=" in out
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["rows"]) == 6
    for row in results["rows"]:
        assert row["status"] in ("ok", "error")
        if row["status"] == "error":  # ppo_like diverges for lr > 0.03
            assert row["config"]["lr"] > 0.03
    assert (run_dir / "pareto.png").stat().st_size > 1000
    # A second sweep into the same directory is refused unless resuming.
    with pytest.raises(ConfigError, match="already holds a sweep"):
        sweep_main(argv)


def test_cli_resume_needs_a_run_dir_with_a_sweep(ray_session, tmp_path) -> None:
    with pytest.raises(ConfigError, match="together with run_dir"):
        sweep_main(["sweep=branin", "resume=true"])
    with pytest.raises(ConfigError, match="holds no Tune experiment"):
        sweep_main(["sweep=branin", "resume=true", f"run_dir={tmp_path}"])


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["searcher=grid"], "searcher"),
        (["sweep=branin", "num_samples=0"], "num_samples"),
        (["sweep=branin", "sweep.mode=maximize"], "sweep.mode"),
        (["sweep=branin", "sweep.objective=synthetic:nope"], "unknown synthetic objective"),
        (["sweep=branin", "+sweep.parameters.x1.space=cubic"], "choose one of"),
        (["sweep=ppo_cost", "sweep.fidelity=algo.gamma"], "sweep.fidelity"),
        (["sweep=ppo_cost", "searcher=carbs"], "set sweep.fidelity=null or use searcher=protein"),
        (["sweep=ppo_tiny", "sweep.fixed=[]"], "together with eval_episodes"),  # eval metric, no final eval
    ],
)
def test_cli_rejects_bad_configs_with_a_message(argv: list[str], match: str, tmp_path) -> None:
    with pytest.raises(ConfigError, match=match):
        sweep_main([*argv, f"run_dir={tmp_path / 'x'}"])
