"""`dspy-rl grpo apply-policy` on a real SQLite trace store, and the DSPy integration reading the policy file."""

from __future__ import annotations

import subprocess

import pytest
import yaml


def _record(db) -> None:
    from dspy_rl.traces.collector import StoreSink, TraceCollector
    from dspy_rl.traces.store import TraceStore

    with TraceStore(db) as store:
        c = TraceCollector(StoreSink(store), "agent")
        plan = [
            ("run the unit tests of the parser", "pytest", "success"),
            ("run the unit tests again", "pytest", "success"),
            ("search the code for the parser", "grep", "success"),
            ("search the logs", "grep", "failure"),
            ("download the dataset from the internet", "curl", "failure"),
            ("download weights from the internet mirror", "curl", "failure"),
            ("download the page", "curl", "empty"),
        ]
        for task, tool, status in plan:
            with c.trace(task) as t:
                p = t.prompt("react", f"user: {task}", f"call {tool}")
                t.tool(
                    tool,
                    {"q": task},
                    status=status,
                    output="" if status == "empty" else "out",
                    parent_id=p.span_id,
                )
                t.reward(1.0 if status == "success" else -1.0, target=p, source="tool_choice")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["dspy-rl", "grpo", "apply-policy", *args], capture_output=True, text=True, timeout=120
    )


def test_apply_policy_prefers_the_best_and_denies_the_worst_with_a_trigger(tmp_path):
    db, ws = tmp_path / "traces.db", tmp_path / "ws"
    ws.mkdir()
    _record(db)
    r = _run("--hours", "24", "--top-k", "2", "--bottom-k", "1", "--workspace", str(ws), f"store={db}")
    assert r.returncode == 0, r.stderr
    doc = yaml.safe_load((ws / ".dspy_policy.yaml").read_text())
    assert [t["name"] for t in doc["prefer"]["tools"]] == ["pytest", "grep"]
    assert doc["prefer"]["tools"][0] == {"name": "pytest", "mean_reward": 1.0, "n": 2}
    (deny,) = doc["deny"]
    assert deny["tool"] == "curl" and deny["keywords"][0] == "download" and "internet" in deny["keywords"]
    assert doc["prefer"]["signatures"][0]["name"] == "react" and doc["actions"]["tools"] == 7
    assert not list(ws.glob(".dspy_policy.yaml.*"))  # atomic write leaves no temporary file


def test_dspy_reads_the_policy_file(tmp_path):
    dspy = pytest.importorskip("dspy")
    from dspy_rl.integrations.dspy import load_policy_file, policy_react

    db, ws = tmp_path / "traces.db", tmp_path / "ws"
    ws.mkdir()
    _record(db)
    assert _run("--workspace", str(ws), "--top-k", "2", f"store={db}").returncode == 0
    tools = [dspy.Tool(lambda: "", name=n, desc=n) for n in ("curl", "ls", "grep", "pytest")]
    policy = load_policy_file(ws)
    assert [t.name for t in policy.filter(tools, "Download the release notes")] == ["pytest", "grep", "ls"]
    assert [t.name for t in policy.filter(tools, "fix the failing build")] == ["pytest", "grep", "curl", "ls"]
    agent = policy_react("question -> answer", tools, ws, "download it")
    assert list(agent.tools) == ["pytest", "grep", "ls", "finish"]
    assert load_policy_file(tmp_path / "nowhere") is None


def test_bad_inputs_fail_in_one_line(tmp_path):
    from dspy_rl.traces.store import TraceStore

    def own_lines(r):  # a third-party import may print warnings of its own
        return [line for line in r.stderr.splitlines() if line.startswith("dspy-rl")]

    db = tmp_path / "empty.db"
    TraceStore(db).close()
    r = _run("--workspace", str(tmp_path / "missing"), f"store={db}")
    assert r.returncode == 2 and len(own_lines(r)) == 1 and "not an existing directory" in own_lines(r)[0]
    r = _run("--workspace", str(tmp_path), f"store={db}")
    assert r.returncode == 2 and len(own_lines(r)) == 1 and "no actions" in own_lines(r)[0]
    r = _run("--workspace", str(tmp_path), f"store={tmp_path / 'nope.db'}")
    assert r.returncode == 2 and "does not exist" in own_lines(r)[0]
    r = _run(f"store={db}")
    assert r.returncode == 2 and "workspace" in own_lines(r)[0]
