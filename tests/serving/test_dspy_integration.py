"""A real `dspy.ReAct` agent with real Python tools, driven by a tiny LM served by `serve lm`, recorded through
DSPy's callback API into the SQLite trace store, then mined into GRPO groups with `dspy-rl grpo mine`.

What this shows, honestly: the tiny model was taught (in this test, a few seconds of training) to answer exactly
the agent's prompts with parseable JSON, choosing between two tools with about even odds; it memorizes, it does not
reason. Everything else is real: DSPy's ReAct loop and JSONAdapter, litellm's OpenAI client over HTTP to Ray Serve,
the tools' execution, the recorder, the store and the miner.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

dspy = pytest.importorskip("dspy")

from tests.serving.conftest import free_port  # noqa: E402
from tests.serving.teach import teach_tiny_lm  # noqa: E402

QUESTION = "What is 2 plus 3?"
CALL_ADD = (
    '{ "next_thought": "call a tool" , "next_tool_name": "add" , "next_tool_args": { "a": 2 , "b": 3 } }'
)
CALL_LOOKUP = (
    '{ "next_thought": "call a tool" , "next_tool_name": "lookup" , "next_tool_args": { "name": "x" } }'
)
FINISH = '{ "next_thought": "done" , "next_tool_name": "finish" , "next_tool_args": { } }'
ANSWER_ADD = '{ "reasoning": "add gave 5" , "answer": "5" }'
ANSWER_LOOKUP = '{ "reasoning": "lookup gave nothing" , "answer": "unknown" }'


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def lookup(name: str) -> str:
    """Look up a stored value by name."""
    return {"pi": "3.14"}.get(name, "")


def make_agent():
    return dspy.ReAct("question -> answer", tools=[add, lookup], max_iters=3)


def demonstrations() -> list[tuple[list[dict], str]]:
    """The agent's real prompts (DSPy's own JSONAdapter formatting) paired with the answers to teach."""
    agent, adapter = make_agent(), dspy.JSONAdapter()

    def react(traj):
        inputs = {"question": QUESTION, "trajectory": agent._format_trajectory(traj)}
        return adapter.format(agent.react.signature, [], inputs)

    def extract(traj):
        inputs = {"question": QUESTION, "trajectory": agent._format_trajectory(traj)}
        return adapter.format(agent.extract.predict.signature, [], inputs)

    demos = [(react({}), CALL_ADD), (react({}), CALL_LOOKUP)]
    for tool, args, answer in (
        ("add", {"a": 2, "b": 3}, ANSWER_ADD),
        ("lookup", {"name": "x"}, ANSWER_LOOKUP),
    ):
        traj = {
            "thought_0": "call a tool",
            "tool_name_0": tool,
            "tool_args_0": args,
            "observation_0": agent.tools[tool](**args),
        }
        demos.append((react(traj), FINISH))
        traj.update(
            thought_1="done", tool_name_1="finish", tool_args_1={}, observation_1=agent.tools["finish"]()
        )
        demos.append((extract(traj), answer))
    return demos


@pytest.fixture(scope="module")
def taught_lm(ray_session, tmp_path_factory):
    from ray import serve

    from dspy_rl.serving.lm_app import deploy
    from dspy_rl.serving.lm_config import LMServeConfig

    directory, loss = teach_tiny_lm(tmp_path_factory.mktemp("taught") / "model", demonstrations())
    assert loss < 0.5  # the 50/50 tool choice keeps it above 0 (ln 2 / response length)
    cfg = LMServeConfig(
        port=free_port(),
        model=str(directory),
        model_name="taught",
        app_name=f"lm_{uuid.uuid4().hex[:6]}",
        num_cpus=0,
    )
    deploy(cfg)
    yield f"http://127.0.0.1:{cfg.port}/v1"
    serve.delete(cfg.app_name)
    serve.shutdown()


@pytest.mark.slow  # trains the tiny LM for ~1-2 min on the shared machine
@pytest.mark.timeout(1200)
def test_react_agent_is_recorded_and_mined(taught_lm, tmp_path):
    from dspy_rl.integrations.dspy import record_dspy
    from dspy_rl.traces.store import TraceStore

    db = tmp_path / "traces.db"
    recorder = record_dspy(db, agent_id="react-agent")
    answers, failed = {}, 0
    for seed in range(16):
        lm = dspy.LM(
            "openai/taught",
            api_base=taught_lm,
            api_key="unused",
            temperature=0.3,
            max_tokens=40,
            cache=False,
            num_retries=0,
            seed=seed,
        )
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter(), callbacks=[recorder]):
            try:
                pred = make_agent()(question=QUESTION)
            except dspy.utils.exceptions.AdapterParseError:
                failed += 1  # a sampled answer strayed from the taught ones; recorded as an error trace
                continue
        answers[seed] = (pred.trajectory["tool_name_0"], pred.answer)
        if len(set(answers.values())) == 2 and len(answers) >= 4:
            break
    assert set(answers.values()) == {("add", "5"), ("lookup", "unknown")}, answers

    with TraceStore(db) as store:
        traces = store.query_traces(limit=100)
        assert len(traces) == len(answers) + failed
        assert sorted(t.status for t in traces) == sorted(["ok"] * len(answers) + ["error"] * failed)
        ok = next(t for t in traces if t.status == "ok")
        spans = store.get_trace(ok.trace_id).spans
    kinds = sorted({s.kind for s in spans})
    assert kinds == ["content", "prompt", "reasoning", "reward", "tool"]
    prompts = [s for s in spans if s.kind == "prompt"]
    assert [p.name for p in prompts] == ["react", "react", "extract.predict"]
    assert prompts[0].attributes["messages"][0]["role"] == "system"
    assert "next_tool_name" in prompts[0].attributes["response"]
    tools = [s for s in spans if s.kind == "tool"]
    assert [t.name for t in tools][-1] == "finish" and tools[0].name in ("add", "lookup")
    assert tools[0].attributes["status"] == ("success" if tools[0].name == "add" else "empty")
    choice = next(s for s in spans if s.kind == "reward" and s.name == "tool_choice")
    assert choice.attributes["target"] == prompts[0].span_id
    modules = {s.name for s in spans if s.kind == "reasoning"}
    assert {"module.ReAct", "module.Predict", "module.ChainOfThought"} <= modules
    out = tmp_path / "groups.jsonl"
    r = subprocess.run(
        ["dspy-rl", "grpo", "mine", f"db={db}", f"out={out}", "hours=1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    (group,) = [json.loads(line) for line in (tmp_path / "groups.signature.jsonl").read_text().splitlines()]
    assert group["meta"]["signature"] == "react" and QUESTION in group["prompt"]
    rewards = {("add" if '"add"' in c["text"] else "lookup"): c["reward"] for c in group["candidates"]}
    assert rewards == pytest.approx({"add": 1.0, "lookup": -0.5})  # shared scheme, no step cost
    (glob,) = [json.loads(line) for line in (tmp_path / "groups.global.jsonl").read_text().splitlines()]
    assert glob["prompt"] == QUESTION and sorted(c["text"] for c in glob["candidates"]) == ["5", "unknown"]
