"""`dspy-rl serve` command line: config validation messages and the train-judge subcommand."""

from __future__ import annotations

import json

import pytest

from dspy_rl.cli.serve import _config, main
from dspy_rl.config import ConfigError


def test_defaults_bind_localhost_and_compose_the_judges_group():
    cfg = _config([])
    assert cfg.host == "127.0.0.1" and cfg.port == 8000 and cfg.autoscaling == "adaptive"
    assert sorted(cfg.enabled_judges()) == ["embedding", "rubric"]
    assert sorted(_config(["judges=rubric_only"]).enabled_judges()) == ["rubric"]
    assert _config(["--port", "8123", "--autoscaling", "fixed"]).port == 8123


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["port=70000"], "port=70000"),
        (["autoscaling=magic"], "autoscaling='magic'"),
        (["deadline_s=0"], "deadline_s=0"),
        (["control.mode=pid"], "control="),
        (["judges.rubric.max_replicas=0"], "judges.rubric.max_replicas=0"),
        (["judges.transformer.enabled=true"], "judges.transformer.options.checkpoint"),
        (["judges.llm.enabled=true"], "judges.llm.options.base_url"),
        (["judges.rubric.enabled=false", "judges.embedding.enabled=false"], "at least one enabled judge"),
        (["metrics_interval_s=5"], "metrics_interval_s=5"),
    ],
)
def test_bad_settings_name_the_key(argv, match):
    with pytest.raises(ConfigError, match=match.replace("[", r"\[")):
        _config(argv)


def test_missing_auth_token_env_is_reported(monkeypatch):
    monkeypatch.delenv("DSPY_RL_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="DSPY_RL_NO_SUCH_TOKEN"):
        main(["judges", "auth_token_env=DSPY_RL_NO_SUCH_TOKEN", "judges=rubric_only"])


def test_train_judge_writes_a_loadable_checkpoint(tmp_path, make_pairs, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("\n".join(json.dumps(p.__dict__) for p in make_pairs(32, seed=1)))
    out = tmp_path / "judge"
    argv = [
        "train-judge",
        "--pairs",
        str(pairs),
        "--out",
        str(out),
        "--steps",
        "3",
        "train_judge.d_model=16",
        "train_judge.max_len=64",
    ]
    assert main(argv) == 0
    assert (out / "judge.pt").exists() and "train accuracy" in capsys.readouterr().out
    from dspy_rl.judges.transformer import TransformerJudge

    assert TransformerJudge(out).model.cfg.d_model == 16
    with pytest.raises(ConfigError, match="train_judge.pairs"):
        main(["train-judge", "--out", str(out)])
    assert main(["nonsense"]) == 2
