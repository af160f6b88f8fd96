"""The no-broker path: JSONL source, continuous loop, CLI."""

from __future__ import annotations

import json
import math

import pytest

from dspy_rl.cli.stream import main
from dspy_rl.config import ConfigError
from dspy_rl.stream.bus import FileBus
from dspy_rl.stream.continuous import run_continuous
from dspy_rl.stream.file_source import SAMPLE_EVENTS, JsonlSource
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces.mining import MineConfig
from dspy_rl.traces.store import TraceStore


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_jsonl_source_slices_dead_letters_and_is_idempotent(tmp_path):
    events = tmp_path / "events.jsonl"
    spans = list(synthetic_spans(20, seed=5))
    lines = [s.to_json_bytes().decode() for s in spans]
    lines.insert(3, '{"kind": "tool"}')
    events.write_text("\n".join(lines) + "\n" + '{"partial": ')  # last line still being written
    store = TraceStore(tmp_path / "t.db")
    bus = FileBus(tmp_path / "bus")
    source = JsonlSource(store, events, dlq=bus, batch_size=7)
    assert source.ingest(10) == 10 and source.line == 10
    assert source.ingest() == len(lines) - 10 and source.exhausted
    assert store.count_spans() == len(spans) and source.metrics.dlq == 1
    (letter,) = _lines(bus.path("agent.dlq"))
    assert letter["line"] == 4 and "event_id" in letter["reason"]
    with events.open("a") as f:  # the writer finishes the line: it is read (and is malformed)
        f.write('"x"}\n')
    assert source.ingest() == 1 and source.metrics.dlq == 2
    again = JsonlSource(store, events)
    again.ingest()
    assert again.metrics.duplicates == len(spans) and store.count_spans() == len(spans)
    for s in (source, again):
        s.close()
    bus.close()
    store.close()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        JsonlSource(TraceStore(tmp_path / "u.db"), tmp_path / "missing.jsonl")


def test_embedded_sample_is_realistic():
    from dspy_rl.traces.spans import MalformedEvent, parse_event

    good, bad = [], 0
    for line in SAMPLE_EVENTS.read_bytes().splitlines():
        try:
            good.append(parse_event(line))
        except MalformedEvent:
            bad += 1
    assert {"prompt", "tool", "reward", "content"} <= {s.kind for s in good} and len(good) > 500
    assert bad == 3 and len({s.agent_id for s in good}) >= 3


def test_loop_calls_train_iteration_with_each_iterations_groups(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    source = JsonlSource(store)
    seen = []

    def train_iteration(path):
        groups = _lines(path)
        seen.append((path, len(groups)))
        return {"groups_seen": len(groups)}

    records = run_continuous(
        store,
        lambda: source.ingest(300),
        train_iteration,
        run_dir=tmp_path / "run",
        max_iterations=3,
        mine_config=MineConfig(db=str(store.path), hours=None, levels=["signature"]),
        should_stop=lambda: len(seen) >= 2,
    )
    assert len(records) == 2 and [r["iteration"] for r in records] == [0, 1]
    assert seen[0][0] != seen[1][0] and all(p.name.endswith(".signature.jsonl") for p, _ in seen)
    assert records[1]["spans_stored"] > records[0]["spans_stored"] and seen[1][1] >= seen[0][1] > 0
    assert records[0]["train/groups_seen"] == seen[0][1]
    source.close()
    store.close()


def test_cli_continuous_training_on_embedded_sample(tmp_path, capsys):
    run_dir = tmp_path / "run"
    rc = main(
        [
            "train",
            "--continuous",
            "--max-iterations",
            "3",
            f"store={tmp_path / 't.db'}",
            f"run_dir={run_dir}",
            "iteration_events=400",
            "train.batch_groups=4",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["iterations"] == 3
    records = _lines(run_dir / "metrics.jsonl")
    published = _lines(run_dir / "bus" / "agent.metrics.jsonl")
    assert records == published and [r["iteration"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["train/updated"] == 1 and math.isfinite(r["train/loss"]) and r["groups"] > 0
    policy = run_dir / "policy_signature"
    assert (policy / "model").is_dir() and (policy / "latest").is_file()
    assert sorted(p.name for p in (run_dir / "groups").glob("*.signature.jsonl")) == [
        f"iter{i:05d}.signature.jsonl" for i in (0, 1, 2)]  # fmt: skip
    assert len(_lines(run_dir / "bus" / "agent.dlq.jsonl")) == 3  # the sample's malformed lines


def test_cli_ingest_and_export(tmp_path, capsys):
    db = tmp_path / "t.db"
    assert main(["ingest", f"store={db}"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["stored"] > 0 and metrics["dlq"] == 3
    assert main(["export", "--out", str(tmp_path / "exp"), f"store={db}"]) == 0
    assert json.loads(capsys.readouterr().out)["traces"] > 0
    assert (tmp_path / "exp" / "metadata" / "trace_index.json").is_file()


def test_cli_rejects_bad_input(tmp_path, capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown subcommand" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="bootstrap_servers"):
        main(["ingest", "stream.kind=kafka", f"store={tmp_path / 't.db'}"])
    with pytest.raises(ConfigError, match="max_iterations"):
        main(["train", "--max-iterations", "0"])
    with pytest.raises(ConfigError, match="mine.level"):
        main(["train", "mine.level=everything"])


def test_cli_streaming_iterations_with_ppo_and_grpo_phases_on_a_hf_model(tmp_path, capsys):
    """Seed 000: N PPO env steps in the simulator + M GRPO steps on a tiny GPT-2 per iteration; metrics published;
    old mined group files removed."""
    run_dir = tmp_path / "run"
    rc = main(
        ["train", "--rl-steps", "1024", "--grpo-steps", "3", "--continuous", "--max-iterations", "2",
         "--model", "tiny-gpt2", f"store={tmp_path / 't.db'}", f"run_dir={run_dir}", "iteration_events=400",
         "train.batch_groups=4", "keep_group_files=1",
         "rl_overrides=['runtime.num_env_runners=0','env.num_envs=64','algo.rollout_len=16','algo.minibatch_size=512']"]
    )  # fmt: skip
    assert rc == 0
    records = _lines(run_dir / "metrics.jsonl")
    assert records == _lines(run_dir / "bus" / "agent.metrics.jsonl")
    assert [r["rl/env_steps"] for r in records] == [1024, 2048]
    assert all(r["rl/new_env_steps"] == 1024 and 0 <= r["rl/success_rate"] <= 1 for r in records)
    assert all(r["train/steps"] == 3 and math.isfinite(r["train/loss"]) for r in records)
    assert all("sys/ram_used_gb" in r for r in records)
    policy = run_dir / "policy_signature"
    assert (policy / "model" / "config.json").is_file()  # a Hugging Face model directory
    assert [json.loads(x)["step"] for x in (policy / "metrics.jsonl").read_text().splitlines()] == [3, 6]
    assert [p.name for p in (run_dir / "groups").iterdir()] == ["iter00001.signature.jsonl"]
    assert (run_dir / "rl" / "checkpoints" / "latest").is_file()
