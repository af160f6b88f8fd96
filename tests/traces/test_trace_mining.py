"""GRPO mining: groups by prompt with logged rewards, three levels, time window, CLI."""

from __future__ import annotations

import json
import time

import pytest

from dspy_rl.cli.grpo import _mine as main
from dspy_rl.config import ConfigError
from dspy_rl.traces import StoreSink, TraceCollector, TraceStore
from dspy_rl.traces.mining import MineConfig, context_hash, level_path, mine

TASK = "Find where load_config is defined."


def _episode(
    col: TraceCollector, response: str, patch: str | None, rewards: list[float], context: dict
) -> None:
    with col.trace(TASK) as t:
        call = t.prompt("PlanStep", prompt=TASK, response=response, context=context, patch=patch)
        for r in rewards:
            t.reward(r, target=call)
        t.prompt("Unrewarded", prompt=TASK, response="ignored")
        t.end(answer=f"answer via {response}")


@pytest.fixture
def store(tmp_path):
    s = TraceStore(tmp_path / "traces.db")
    col = TraceCollector(StoreSink(s), "coder-1")
    ctx = {"repo": "cli-tool"}
    _episode(col, "grep -rn load_config", "+fix", [1.0], ctx)
    _episode(col, "ls", None, [-0.5], ctx)
    _episode(col, "grep -rn load_config", "+fix2", [0.5, -0.25], ctx)  # same text: merged, mean reward
    _episode(col, "cat main.py", None, [0.0], {"repo": "other"})  # other context: its own group of one
    yield s
    s.close()


def test_levels_and_rewards(store, tmp_path):
    report = mine(store, MineConfig(db=str(store.path), out=str(tmp_path / "g.jsonl"), hours=1))
    assert report.written == {"global": 1, "signature": 1, "patch": 1}
    assert report.too_few_candidates["signature"] == 1 and report.unrewarded_actions == 4
    (sig,) = [json.loads(x) for x in level_path(tmp_path / "g.jsonl", "signature").read_text().splitlines()]
    assert sig["prompt"] == TASK
    assert {c["text"]: c["reward"] for c in sig["candidates"]} == {
        "grep -rn load_config": pytest.approx((1.0 + 0.25) / 2),
        "ls": -0.5,
    }
    assert sig["meta"]["signature"] == "PlanStep" and sig["meta"]["level"] == "signature"
    assert (
        sig["meta"]["context_hash"] == context_hash({"repo": "cli-tool"}) and sig["meta"]["num_samples"] == 3
    )
    (patch,) = [json.loads(x) for x in level_path(tmp_path / "g.jsonl", "patch").read_text().splitlines()]
    assert {c["text"] for c in patch["candidates"]} == {"+fix", "+fix2"}
    (glob,) = [json.loads(x) for x in level_path(tmp_path / "g.jsonl", "global").read_text().splitlines()]
    assert glob["meta"]["signature"] == "*" and glob["meta"]["num_samples"] == 4
    # the two episodes with the same final answer are one candidate with their mean trace reward
    assert {c["text"]: c["reward"] for c in glob["candidates"]} == {
        "answer via grep -rn load_config": pytest.approx((1.0 + 0.25) / 2),
        "answer via ls": -0.5,
        "answer via cat main.py": 0.0,
    }


def test_window_excludes_old_traces(store, tmp_path):
    report = mine(
        store,
        MineConfig(db=str(store.path), out=str(tmp_path / "g.jsonl"), hours=1, until=time.time() - 7200),
    )
    assert report.spans == 0 and report.written == {"global": 0, "signature": 0, "patch": 0}


def test_drop_equal_rewards(tmp_path):
    s = TraceStore(tmp_path / "t.db")
    col = TraceCollector(StoreSink(s), "a")
    for response in ("a", "b"):
        _episode(col, response, None, [1.0], {})
    kept = mine(s, MineConfig(db=str(s.path), out=str(tmp_path / "k.jsonl"), levels=["signature"]))
    dropped = mine(
        s,
        MineConfig(
            db=str(s.path), out=str(tmp_path / "d.jsonl"), levels=["signature"], drop_equal_rewards=True
        ),
    )
    assert kept.written["signature"] == 1 and dropped.equal_rewards["signature"] == 1
    s.close()


def test_cli_writes_level_files(store, tmp_path, capsys):
    out = tmp_path / "groups.jsonl"
    assert main(["--hours", "48", "--out", str(out), f"db={store.path}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["files"]) == {"global", "signature", "patch"}
    for level in ("global", "signature", "patch"):
        assert (tmp_path / f"groups.{level}.jsonl").is_file()


def test_cli_rejects_bad_settings(tmp_path, capsys):
    assert main([f"db={tmp_path / 'missing.db'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="levels"):
        main(["levels=[everything]", f"db={tmp_path / 'x.db'}"])
    with pytest.raises(ConfigError, match="hours"):
        main(["--hours", "-3"])
