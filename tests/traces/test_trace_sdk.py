"""TraceCollector + RewardComputer + JSON export."""

from __future__ import annotations

import json

import pytest

from dspy_rl.traces import MemorySink, RewardComputer, RewardConfig, StoreSink, TraceCollector, TraceStore
from dspy_rl.traces.export import export_traces, safe_name
from dspy_rl.traces.rewards import structure_score, token_f1


def test_tool_rewards_follow_the_scheme():
    rc = RewardComputer(RewardConfig(step_cost=0.0))
    assert (rc.tool_reward("success"), rc.tool_reward("failure"), rc.tool_reward("empty")) == (
        1.0,
        -1.0,
        -0.5,
    )
    assert RewardComputer(RewardConfig(step_cost=0.01)).tool_reward("success") == pytest.approx(0.99)
    assert RewardComputer().tool_reward("error") == -1.0  # the rubric judge's name for a failure
    with pytest.raises(ValueError, match="tool status"):
        rc.tool_reward("meh")


def test_answer_quality_parts():
    rc = RewardComputer()
    good = "Run the tests first.\n\n- pytest -q\n- fix the date parser\n\n```\npytest -q\n```\nDone."
    q = rc.answer_quality(good, reference="fix the date parser then run pytest")
    assert q.structure == pytest.approx(0.27) and 0 < q.similarity < 0.3 and 0 < q.total <= 1
    assert q.total == pytest.approx(q.structure + q.depth + q.similarity)
    assert rc.answer_quality("").total == 0.0
    assert token_f1("a b c", "a b c") == 1.0 and token_f1("x", "y") == 0.0
    assert structure_score("one line") < structure_score(good)


def test_coordination_rewards_penalize_rejections_and_repeats(tmp_path):
    rc = RewardComputer()
    col = TraceCollector(MemorySink(), "lead")
    t = col.start_trace("task")
    spans = [
        t.coordination("coder", "please fix", "accepted"),
        t.coordination("coder", "please fix", "rejected"),
        t.coordination("coder", "status?", "timeout"),
    ]
    cfg = rc.config
    assert rc.coordination_rewards(spans) == pytest.approx(
        [cfg.handoff_accepted, cfg.handoff_rejected + cfg.redundant_message, cfg.handoff_timeout]
    )


def test_collector_records_trace_with_rewards_into_store(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    col = TraceCollector(
        StoreSink(store), "coder-1", reward_computer=RewardComputer(RewardConfig(step_cost=0.0))
    )
    with col.trace("fix the test", metadata={"repo": "x"}) as t:
        plan = t.prompt("PlanStep", prompt="fix the test", response="pytest -q", context={"repo": "x"})
        t.tool("pytest", args="-q", status="failure")
        t.tool("edit", args="a.py", status="success")
        t.reward(0.5, target=plan, source="judge")
        with t.span("reasoning", "think") as attrs:
            attrs["text"] = "the parser is wrong"
        t.end(status="success", answer="fixed")
    trace = store.get_trace(t.trace_id)
    assert trace.status == "success" and trace.metadata == {"repo": "x"}
    kinds = [s.kind for s in trace.spans]
    assert kinds.count("tool") == 2 and kinds.count("reasoning") == 1
    # -1 (failed tool) + 1 (tool ok) + 0.5 (judge) + completion bonus
    assert trace.total_reward == pytest.approx(0.5 + RewardConfig().completion_bonus)
    store.close()


def test_trace_block_that_raises_is_recorded_as_error():
    sink = MemorySink()
    col = TraceCollector(sink, "a")
    with pytest.raises(RuntimeError), col.trace("task") as t:
        t.tool("make", status="failure")
        raise RuntimeError("boom")
    end = [s for s in sink.spans if s.name == "trace.end"][0]
    assert end.attributes["status"] == "error" and "boom" in end.attributes["metadata"]["error"]
    with pytest.raises(RuntimeError, match="has ended"):
        t.tool("make")


def test_export_layout_and_index(tmp_path):
    store = TraceStore(tmp_path / "t.db")
    col = TraceCollector(StoreSink(store), "agent/with:odd chars")
    for i in range(3):
        with col.trace(f"task {i}") as t:
            t.prompt("Plan", prompt=f"task {i}", response="ls")
            t.reward(float(i))
    index = export_traces(store, tmp_path / "out", min_reward=1.0)
    assert index["num_traces"] == 2
    for entry in index["traces"]:
        path = tmp_path / "out" / entry["path"]
        parts = path.relative_to(tmp_path / "out").parts
        assert parts[0] == "traces" and len(parts[1]) == 8 and parts[1].isdigit()
        assert parts[2] == safe_name("agent/with:odd chars") and parts[3] == f"{entry['trace_id']}.json"
        data = json.loads(path.read_text())
        assert data["trace_id"] == entry["trace_id"] and len(data["spans"]) == entry["num_spans"]
    on_disk = json.loads((tmp_path / "out" / "metadata" / "trace_index.json").read_text())
    assert on_disk["num_traces"] == 2 and on_disk["filters"]["min_reward"] == 1.0
    store.close()
