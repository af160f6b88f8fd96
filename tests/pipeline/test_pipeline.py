"""`dspy-rl pipeline`: a real (tiny) sweep, a training run with the best trial's configuration, an evaluation,
one results page, and a rerun that skips the finished stages; bad input in one line before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.cli import main as cli_main

TRAIN = [
    "train.env=easy",
    "train.env.num_envs=32",
    "train.total_env_steps=20000",
    "train.runtime.num_env_runners=0",
    "train.logging.progress_bar=false",
    "train.logging.tensorboard=false",
]


@pytest.mark.slow  # a real sweep (2 trials), a training run and an eval: ~1-3 min on the shared machine
def test_pipeline_runs_its_three_stages_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "p"
    argv = [
        f"run_dir={run}",
        "sweep.sweep=ppo_tiny",
        "sweep.num_samples=2",
        "sweep.max_concurrent=1",
        "sweep.num_cpus=1",
        "sweep.plot=false",
        *TRAIN,
        "eval.episodes=200",
    ]
    assert cli_main(["pipeline", *argv]) == 0
    state = json.loads((run / "pipeline.json").read_text())
    assert state["sweep"]["trials"] == 2 and state["sweep"]["best"]["config"]
    lr = state["sweep"]["best"]["config"]["algo.lr"]
    assert f"algo.lr={lr}" in state["train"]["overrides"] and "env=easy" in state["train"]["overrides"]
    assert not any(
        o.startswith("total_env_steps=") and o != "total_env_steps=20000" for o in state["train"]["overrides"]
    )
    assert state["train"]["env_steps"] >= 20000 and state["eval"]["episodes"] == 200
    assert 0.0 <= state["eval"]["success_rate"] <= 1.0
    page = (run / "results.md").read_text()
    assert "## Sweep (2 trials" in page and "## Evaluation of the trained checkpoint" in page
    assert (run / "train" / "learning_curve.png").exists()
    capsys.readouterr()
    # Rerun with only the run directory: every stage is done, nothing is retrained.
    before = (run / "train" / "metrics.jsonl").read_text()
    assert cli_main(["pipeline", f"run_dir={run}"]) == 0
    assert (run / "train" / "metrics.jsonl").read_text() == before
    assert "pipeline done" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sweep.sweep=ppo_tiny"], "run_dir=<dir> is required"),
        (["run_dir=/tmp/x", "bogus=1"], "unknown key 'bogus'"),
        (["run_dir=/tmp/x", "train.algo.lr=-1"], "algo.lr"),
        (["run_dir=/tmp/x", "train.curriculum=[easy,nope]"], "curriculum"),
        (["run_dir=/tmp/x", "eval.episodes=0"], "eval.episodes"),
    ],
)
def test_bad_input_fails_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["pipeline", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
