"""RLAgentMixin / RLOrchestratorMixin on a small real agent whose chat() runs real Python tools on files,
recorded into a real SQLite store; and the trace SDK and the rubric judge scoring the same episode identically."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from dspy_rl.judges.base import JudgeItem
from dspy_rl.judges.rubric import RubricJudge
from dspy_rl.traces import TraceStore
from dspy_rl.traces.agents import RLAgentMixin, RLConfig, RLOrchestratorMixin
from dspy_rl.traces.rewards import (
    VOTE_AGREE,
    VOTE_DISAGREE,
    answer_quality,
    coordination_reward,
    summarize_coordination,
)

TASK = "Which functions does parser.py define, and what does the failing test expect?"
REFERENCE = "parser.py defines parse and tokenize; the failing test expects parse to return an empty list."


class FileAgent:
    """A tiny tool-using agent: reads files, greps them, and answers; its tools are plain Python functions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- tools (real file system work) --
    def read_file(self, name: str) -> str:
        return (self.root / name).read_text()

    def grep(self, pattern: str, name: str) -> list[str]:
        return [line for line in self.read_file(name).splitlines() if re.search(pattern, line)]

    def _tool(self, name, fn, *args):
        runner = getattr(self, "rl_tool", None)
        try:
            return runner(name, fn, *args) if runner else fn(*args)
        except OSError as exc:
            return f"error: {exc}"

    def _work(self) -> tuple[list[str], str]:
        funcs = self._tool("grep", self.grep, r"^def ", "parser.py")
        self._tool("read_file", self.read_file, "missing.py")  # fails: no such file
        self._tool("grep", self.grep, r"^class ", "parser.py")  # empty: no classes
        expect = self._tool("grep", self.grep, r"assert", "test_parser.py")
        names = [re.match(r"def (\w+)", f).group(1) for f in funcs]
        answer = (
            f"parser.py defines {' and '.join(names)}.\n\n"
            f"- The failing test expects: {expect[0].strip()}\n"
            "- Because parse returns None for empty input, the test fails.\n"
        )
        return names, answer

    def chat(self, message: str) -> dict:
        names, answer = self._work()
        return {"role": "assistant", "reasoning": f"found {len(names)} functions", "content": answer}


class StreamingFileAgent(FileAgent):
    def chat(self, message: str):
        yield {"type": "reasoning", "text": "grep for definitions first"}
        names, answer = self._work()
        for part in answer.split("\n\n"):
            yield part + "\n\n"


class AsyncFileAgent(FileAgent):
    async def chat(self, message: str):
        names, answer = self._work()
        yield answer


class RLFileAgent(RLAgentMixin, FileAgent):
    pass


class RLStreamingAgent(RLAgentMixin, StreamingFileAgent):
    pass


class RLAsyncAgent(RLAgentMixin, AsyncFileAgent):
    pass


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "parser.py").write_text(
        "def parse(text):\n    return None\n\ndef tokenize(text):\n    return []\n"
    )
    (tmp_path / "test_parser.py").write_text("def test_empty():\n    assert parse('') == []\n")
    return tmp_path


@pytest.fixture
def store(tmp_path: Path):
    s = TraceStore(tmp_path / "traces.db")
    yield s
    s.close()


def _only_trace(store: TraceStore):
    (rec,) = store.query_traces()
    return store.get_trace(rec.trace_id)


def _by_kind(trace, kind, name=None):
    return [s for s in trace.spans if s.kind == kind and (name is None or s.name == name)]


def test_plain_chat_records_tools_reasoning_content_and_rewards(workspace, store):
    agent = RLFileAgent(workspace)
    agent.enable_rl_tracing(store, agent_id="files-1", config=RLConfig(enable_rl=True))
    reply = agent.chat(TASK, rl_reference=REFERENCE)
    assert "parse and tokenize" in reply["content"]
    trace = _only_trace(store)
    assert trace.status == "ok" and trace.agent_id == "files-1"
    tools = _by_kind(trace, "tool")
    assert [(t.name, t.attributes["status"]) for t in tools] == [
        ("grep", "success"),
        ("read_file", "failure"),
        ("grep", "empty"),
        ("grep", "success"),
    ]
    assert "FileNotFoundError" in tools[1].attributes["output"]
    assert [s.attributes["text"] for s in _by_kind(trace, "reasoning")] == ["found 2 functions"]
    (content,) = [s for s in _by_kind(trace, "content") if s.name == "answer"]
    assert content.attributes["text"] == reply["content"]
    (prompt,) = _by_kind(trace, "prompt")
    assert prompt.attributes["prompt"] == TASK and prompt.attributes["response"] == reply["content"]
    rewards = {s.attributes["target"]: s for s in _by_kind(trace, "reward")}
    assert [rewards[t.span_id].reward for t in tools] == [1.0, -1.0, -0.5, 1.0]
    quality = answer_quality(reply["content"], TASK, REFERENCE)
    assert rewards[content.span_id].reward == pytest.approx(quality.total)
    assert 0.3 < quality.total < 1.0
    assert trace.total_reward == pytest.approx(0.5 + quality.total)


def test_streaming_chat_records_every_chunk_and_yields_them_unchanged(workspace, store):
    agent = RLStreamingAgent(workspace)
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=True))
    chunks = list(agent.chat(TASK))
    plain = list(StreamingFileAgent(workspace).chat(TASK))
    assert chunks == plain and isinstance(chunks[0], dict)
    trace = _only_trace(store)
    assert [t.attributes["status"] for t in _by_kind(trace, "tool")] == [
        "success",
        "failure",
        "empty",
        "success",
    ]
    assert [s.attributes["text"] for s in _by_kind(trace, "reasoning")] == ["grep for definitions first"]
    (content,) = [s for s in _by_kind(trace, "content") if s.name == "answer"]
    assert content.attributes["num_chunks"] == len(chunks) == 3
    assert content.attributes["chunks"] == chunks
    assert content.attributes["text"] == "".join(chunks[1:])
    assert len(_by_kind(trace, "reward")) == 5  # 4 tools + 1 answer


def test_stream_stopped_early_is_cancelled_and_async_streams_are_recorded(workspace, store):
    agent = RLStreamingAgent(workspace)
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=True, collect_only=True))
    stream = agent.chat(TASK)
    next(stream)
    stream.close()
    assert _only_trace(store).status == "cancelled"

    async def consume(a):
        return [c async for c in a.chat(TASK)]

    async_agent = RLAsyncAgent(workspace)
    async_agent.enable_rl_tracing(store, agent_id="async", config=RLConfig(enable_rl=True))
    (answer,) = asyncio.run(consume(async_agent))
    (rec,) = store.query_traces(agent_id="async")
    trace = store.get_trace(rec.trace_id)
    assert trace.status == "ok" and len(_by_kind(trace, "tool")) == 4
    assert [s.attributes["text"] for s in _by_kind(trace, "content", "answer")] == [answer]


def test_chat_that_raises_is_recorded_as_error_and_reraised(workspace, store):
    class Broken(RLAgentMixin, FileAgent):
        def chat(self, message):  # the mixin's chat wraps FileAgent's via super(); break FileAgent's tools
            return super().chat(message)

    agent = Broken(workspace / "nowhere")
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=True))
    agent.grep = lambda pattern, name: 1 / 0  # a tool bug that is not an OSError
    with pytest.raises(ZeroDivisionError):
        agent.chat(TASK)
    trace = _only_trace(store)
    assert trace.status == "error" and "ZeroDivisionError" in trace.metadata["error"]
    assert [t.attributes["status"] for t in _by_kind(trace, "tool")] == ["failure"]


def test_collect_only_records_spans_without_rewards(workspace, store):
    agent = RLFileAgent(workspace)
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=True, collect_only=True))
    agent.chat(TASK)
    trace = _only_trace(store)
    assert len(_by_kind(trace, "tool")) == 4 and _by_kind(trace, "content", "answer")
    assert _by_kind(trace, "reward") == [] and not trace.total_reward


def test_reward_families_switch_independently(workspace, store):
    agent = RLFileAgent(workspace)
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=True, enable_tool_rewards=False))
    agent.chat(TASK)
    trace = _only_trace(store)
    assert [s.name for s in _by_kind(trace, "reward")] == ["answer_quality"]


def test_disabled_records_nothing_and_returns_the_parents_objects(workspace, store):
    agent = RLStreamingAgent(workspace)
    agent.enable_rl_tracing(store, config=RLConfig(enable_rl=False))
    stream = agent.chat(TASK)
    # the generator is StreamingFileAgent.chat's own: no wrapper in between
    assert stream.gi_code is StreamingFileAgent.chat.__code__
    assert len(list(stream)) == 3
    plain = RLFileAgent(workspace)  # never enabled: the class default is off
    assert plain.rl_config.enable_rl is False and "parse" in plain.chat(TASK)["content"]
    assert store.count_spans() == 0 and store.count_traces() == 0


# --- orchestrator -------------------------------------------------------------------------------------------


class Orchestrator:
    """Asks several FileAgents, lets them vote, restarts once when there is no majority."""

    def __init__(self, agents: dict[str, FileAgent]) -> None:
        self.agents = agents

    def chat(self, message: str) -> str:
        answers = {}
        for round_no in range(2):
            answers = {}
            for name, agent in self.agents.items():
                _, text = agent._work()
                if round_no == 0 and name == "b":
                    text = "no idea"
                answers[name] = text
                self.rl_answer(name, text)
            ballots = {voter: ("a" if round_no else ("b" if voter == "b" else "a")) for voter in self.agents}
            if round_no == 1:
                ballots["c"] = "b"  # one dissent in the final round
            for voter, choice in ballots.items():
                self.rl_vote(voter, choice)
            if round_no == 0:
                self.rl_restart("answers disagree")
        return answers["a"]


class RLOrchestrator(RLOrchestratorMixin, Orchestrator):
    pass


def _orchestrated_episode(workspace, store, **flags):
    agents = {n: RLFileAgent(workspace) for n in ("a", "b", "c")}
    orch = RLOrchestrator(agents)
    orch.enable_rl_tracing(store, agent_id="orchestrator", config=RLConfig(enable_rl=True, **flags))
    answer = orch.chat(TASK, rl_reference=REFERENCE)
    return answer, _only_trace(store)


def test_orchestrator_records_votes_answers_restarts_and_coordination_rewards(workspace, store):
    answer, trace = _orchestrated_episode(workspace, store)
    names = [s.name for s in _by_kind(trace, "coordination")]
    assert names.count("answer") == 6 and names.count("vote") == 6 and names.count("restart") == 1
    rewards = _by_kind(trace, "reward")
    by_target = {r.attributes["target"]: r.reward for r in rewards if r.name == "vote"}
    votes = {
        v.attributes["voter"]: by_target[v.span_id]
        for v in _by_kind(trace, "coordination", "vote")
        if v.span_id in by_target
    }
    assert votes == {
        "a": VOTE_AGREE,
        "b": VOTE_AGREE,
        "c": VOTE_DISAGREE,
    }  # final round only; c voted for "b"
    (episode,) = [r for r in rewards if r.name == "coordination_episode"]
    quality = answer_quality(answer, TASK, REFERENCE).total
    n_tokens = episode.attributes["components"]["tokens"] / -1e-4
    expected = 2 * quality - 0.5 - 0.1 * 1 - 1e-4 * n_tokens  # no consensus, 2 rounds
    assert episode.reward == pytest.approx(expected)
    assert episode.attributes["components"]["quality"] == pytest.approx(2 * quality)
    assert n_tokens > 50


def test_orchestrator_without_coordination_rewards(workspace, store):
    _, trace = _orchestrated_episode(workspace, store, enable_coordination_rewards=False)
    assert _by_kind(trace, "coordination") and {r.name for r in _by_kind(trace, "reward")} <= {
        "answer_quality"
    }


def test_trace_sdk_and_rubric_judge_score_the_same_episode_identically(workspace, store):
    answer, trace = _orchestrated_episode(workspace, store)
    sdk = {r.name: r for r in _by_kind(trace, "reward")}
    (content,) = _by_kind(trace, "content", "answer")
    summary = summarize_coordination(trace.spans)
    quality = answer_quality(summary.answer, TASK, REFERENCE).total
    item = JudgeItem.from_dict(
        {
            "query": TASK,
            "response": content.attributes["text"],
            "reference": REFERENCE,
            "context": {
                "tool_results": [t.attributes["status"] for t in _by_kind(trace, "tool")],
                "coordination": summary.to_context(quality),
            },
        }
    )
    (judged,) = RubricJudge().score_batch([item])
    assert judged.score == sdk["answer_quality"].reward
    assert judged.components["coordination_reward"] == pytest.approx(
        sdk["coordination_episode"].reward, abs=1e-6
    )
    tool_sum = sum(r.reward for r in _by_kind(trace, "reward") if r.name == "tool")
    assert judged.components["tool_reward"] == tool_sum
    assert coordination_reward(summary.rounds, quality, summary.consensus, summary.tokens, 0.1, 1e-4)[
        "total"
    ] == (sdk["coordination_episode"].reward)
