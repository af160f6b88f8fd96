"""`dspy-rl grpo train` end to end: offline and online runs, metrics, atomic checkpoints, resume, config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dspy_rl.cli import main as cli_main
from dspy_rl.config import ConfigError, compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.run import train
from dspy_rl.models.hf import build_tiny_causal_lm
from dspy_rl.utils.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dspy_rl.utils.run_logger import read_metrics

FAST = ["logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false"]


def _dataset(path: Path) -> Path:
    rows = []
    for i, (good, bad) in enumerate(
        [("cat README.md", "cd src"), ("ls docs", "grep TODO"), ("cd src", "ls")] * 2
    ):
        rows.append(
            {
                "prompt": f"goal {i} .",
                "candidates": [
                    {"text": good, "reward": 1.0},
                    {"text": bad, "reward": 0.0},
                    {"text": "pytest", "reward": 0.25},
                ],
                "meta": {"i": i},
            }
        )
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, '{"prompt": "broken", "candidates": [{"text": "x"}]}')
    lines.append(
        json.dumps({"prompt": "flat", "candidates": [{"text": "a", "reward": 1}, {"text": "b", "reward": 1}]})
    )
    path.write_text("\n".join(lines) + "\n")
    return path


def _cfg(*overrides: str) -> GRPOTrainConfig:
    return to_object(compose("grpo", [*FAST, *overrides]), GRPOTrainConfig)


def test_offline_cli_run_writes_metrics_tensorboard_checkpoint_and_report(tmp_path: Path, capsys):
    data = _dataset(tmp_path / "groups.jsonl")
    run = tmp_path / "run"
    rc = cli_main(
        ["grpo", "train", f"dataset={data}", "steps=12", "model=bow", f"run_dir={run}", "lr=0.05", "logging.log_every=1",
         "ckpt_every=5", "batch_groups=2", "lr_step=5", "lr_gamma=0.5", "logging.progress_bar=false", "torch_threads=1",
         "updates_per_batch=2", "kl_warmup=4"]
    )  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert (
        summary["steps"] == 12
        and summary["dataset"]["bad_lines"] == 1
        and summary["dataset"]["equal_rewards"] == 1
    )
    report = json.loads((run / "dataset_report.json").read_text())
    assert report["bad"] == [{"line": 3, "reason": "candidates[0].reward must be a number, got None"}]
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == list(range(12))
    # StepLR(5, 0.5) and the KL warm-up over 4 steps
    assert [r["lr"] for r in rows] == pytest.approx([0.05] * 5 + [0.025] * 5 + [0.0125] * 2)
    assert [r["beta"] for r in rows[:5]] == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04])
    assert all(r["updates"] == 2 for r in rows)
    assert any(r["clip_frac"] > 0 for r in rows)  # the second update on a batch moves the ratio off 1
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tb").iterdir())
    assert (run / "final" / "model.pt").is_file() and (run / "learning_curve.png").is_file()
    state = load_checkpoint(latest_checkpoint(run))
    assert state["trainer"]["step"] == 12 and state["sampler_consumed"] == 24
    # the policy learned to prefer the rewarded candidate
    from dspy_rl.grpo.policy import load_policy

    policy = load_policy(run / "final")
    logp, _ = policy.token_logprobs(
        policy.encode(["goal 0 ."] * 2, [policy.tokenize_response(t) for t in ("cat README.md", "cd src")])
    )
    assert logp[0].sum() > logp[1].sum()


def test_resume_continues_with_the_same_step_count_and_matches_an_uninterrupted_run(tmp_path: Path):
    common = ["mode=online", "model=bow", "lr=0.05", "group_size=4", "batch_groups=3", "max_new_tokens=3", "logging.log_every=1", "ckpt_every=3", "seed=5"]  # fmt: skip
    straight = train(_cfg(*common, "steps=6", f"run_dir={tmp_path / 'a'}"))
    train(_cfg(*common, "steps=3", f"run_dir={tmp_path / 'b'}"))
    # a crash after the checkpoint left extra metric rows behind; resume must drop them
    with (tmp_path / "b" / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 3, "reward_mean": -1}) + "\n")
    resumed = train(_cfg(*common, "steps=6", f"resume={tmp_path / 'b'}"))
    assert resumed.steps == straight.steps == 6
    a = load_checkpoint(latest_checkpoint(tmp_path / "a"))["trainer"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "b"))["trainer"]
    assert a["step"] == b["step"] == 6
    for k in a["policy"]:
        torch.testing.assert_close(a["policy"][k], b["policy"][k], rtol=0, atol=0)
    rows_a, rows_b = read_metrics(tmp_path / "a"), read_metrics(tmp_path / "b")
    assert [r["step"] for r in rows_b] == [r["step"] for r in rows_a] == list(range(6))
    assert [r["reward_mean"] for r in rows_b] == [r["reward_mean"] for r in rows_a]
    assert (tmp_path / "b" / "config.resume-3.yaml").is_file()
    with pytest.raises(ConfigError, match="already holds a run"):
        train(_cfg(*common, "steps=6", f"run_dir={tmp_path / 'b'}"))
    with pytest.raises(ConfigError, match="not a GRPO run directory"):
        train(_cfg(*common, f"resume={tmp_path / 'nothing'}"))


def test_offline_run_with_a_hugging_face_model_directory(tmp_path: Path):
    data = _dataset(tmp_path / "groups.jsonl")
    texts = [
        line
        for row in data.read_text().splitlines()
        for line in json.loads(row).get("prompt", "").split(" | ")
    ]
    texts += ["cat README.md cd src ls docs grep TODO pytest"]
    model_dir = build_tiny_causal_lm(tmp_path / "tiny", texts, n_layer=1, n_embd=16, n_head=2)
    summary = train(_cfg(f"dataset={data}", f"model={model_dir}", "steps=3", f"run_dir={tmp_path / 'run'}", "batch_groups=2", "logging.log_every=1"))  # fmt: skip
    assert summary.steps == 3
    rows = read_metrics(tmp_path / "run")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows) and rows[-1]["kl"] >= 0
    assert (tmp_path / "run" / "final" / "config.json").is_file()


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch):
    first = save_checkpoint(tmp_path, 1, {"step": 1})

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, {"step": 2})
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == first and load_checkpoint(first) == {"step": 1}
    assert sorted(p.name for p in first.parent.iterdir()) == [
        first.name,
        "latest",
    ]  # no temp file left behind


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=-1", "lr=-1"),
        ("lr_gamma=1.5", "lr_gamma"),
        ("on_bad_line=ignore", "on_bad_line"),
        ("group_size=1", "group_size"),
        ("aggregation=mean", "aggregation"),
        ("mode=batch", "mode"),
    ],
)
def test_invalid_settings_exit_2_with_the_key_named(override: str, message: str, tmp_path: Path, capsys):
    rc = cli_main(["grpo", "train", f"dataset={tmp_path / 'x.jsonl'}", override])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_offline_mode_needs_a_dataset_and_fail_mode_names_the_line(tmp_path: Path):
    with pytest.raises(ConfigError, match="dataset=None"):
        _cfg()
    data = _dataset(tmp_path / "groups.jsonl")
    from dspy_rl.grpo.dataset import DatasetError

    with pytest.raises(DatasetError, match=r"groups.jsonl:3: candidates\[0\]\.reward"):
        train(_cfg(f"dataset={data}", "on_bad_line=fail", f"run_dir={tmp_path / 'r'}"))


def test_cli_reports_data_errors_without_a_traceback(tmp_path: Path, capsys):
    data = _dataset(tmp_path / "groups.jsonl")
    rc = cli_main(
        ["grpo", "train", f"dataset={data}", "on_bad_line=fail", f"run_dir={tmp_path / 'r'}", *FAST]
    )
    assert rc == 2 and "groups.jsonl:3:" in capsys.readouterr().err
    rc = cli_main(["grpo", "train", "mode=online", "task=no_such_task", f"run_dir={tmp_path / 'o'}", *FAST])
    assert rc == 2 and "unknown text task 'no_such_task'" in capsys.readouterr().err
    rc = cli_main(
        [
            "grpo",
            "train",
            "--steps",
            "2",
            f"dataset={data}",
            f"model={tmp_path / 'none'}",
            f"run_dir={tmp_path / 'm'}",
            *FAST,
        ]
    )
    assert rc == 2 and "could not load a causal LM" in capsys.readouterr().err


def test_help_lists_every_key_with_its_doc(capsys):
    assert cli_main(["grpo", "train", "--help"]) == 0
    out = capsys.readouterr().out
    for key in ("kl_warmup", "on_bad_line", "lr_step", "updates_per_batch"):
        assert f"  {key}=" in out
    assert "Steps over which beta grows linearly" in out
