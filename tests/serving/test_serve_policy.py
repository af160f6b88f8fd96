"""`serve policy`: ranked tools + argument from a run's checkpoint, over real Serve HTTP with dynamic batching."""

from __future__ import annotations

import concurrent.futures
import subprocess
import uuid

import pytest
import torch

from tests.serving.conftest import free_port
from tests.serving.policy_fixtures import write_run_dir


@pytest.fixture(scope="module")
def policy_server(ray_session, tmp_path_factory):
    from ray import serve

    from dspy_rl.serving.policy_app import deploy
    from dspy_rl.serving.policy_client import PolicyClient
    from dspy_rl.serving.policy_config import PolicyServeConfig

    run = write_run_dir(tmp_path_factory.mktemp("policy") / "run")
    cfg = PolicyServeConfig(
        checkpoint=str(run),
        port=free_port(),
        app_name=f"policy_{uuid.uuid4().hex[:6]}",
        num_cpus=0,
        max_states=8,
        batch_wait_timeout_s=0.02,
    )
    handle = deploy(cfg, "pol-token")
    client = PolicyClient(f"http://127.0.0.1:{cfg.port}", token="pol-token")
    yield client, handle, run, cfg
    client.close()
    serve.delete(cfg.app_name)
    serve.shutdown()


def test_history_state_gets_tools_ranked_by_the_policy(policy_server):
    from dspy_rl.serving.policy_engine import PolicyEngine

    client, _, run, _ = policy_server
    info = client.info()
    assert info["suite"] == "default" and len(info["tools"]) >= 10
    state = {"history": [{"tool": info["tools"][0], "result": "success"}]}
    d = client.decide(state)
    probs = [t["prob"] for t in d["tools"]]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert d["tool"] == d["tools"][0]["tool"]
    # the same numbers as the checkpoint's policy B computed here
    engine = PolicyEngine(run)
    row, phase, _, _ = engine._row(state, "state")
    with torch.no_grad():
        logits, _ = engine.policy._tool_logits_values(torch.from_numpy(row)[None], torch.tensor([phase == 0]))
    expected = torch.softmax(logits[0], -1)
    for t in d["tools"]:
        assert t["prob"] == pytest.approx(float(expected[info["tools"].index(t["tool"])]), abs=1e-5)


def test_tools_filter_obs_state_and_arguments(policy_server):
    client, _, _, _ = policy_server
    info = client.info()
    allowed = info["tools"][:3]
    d = client.decide({"history": [], "tools": allowed}, top_k=2)
    assert len(d["tools"]) == 2 and {t["tool"] for t in d["tools"]} <= set(allowed)
    obs = torch.rand(info["obs_dim"], generator=torch.Generator().manual_seed(0)).tolist()
    decisions = client.decide_many([{"obs": obs, "phase": 0}, {"obs": obs, "phase": 1}])
    assert len(decisions) == 2 and decisions[0]["tools"] != decisions[1]["tools"]  # policies A and B differ
    for dec in decisions:
        assert (dec["arg"] is None) == (dec["arg_prob"] is None)


def test_concurrent_requests_are_batched_and_answered_each(policy_server):
    client, handle, _, _ = policy_server
    info = client.info()
    states = [
        {"history": [{"tool": info["tools"][i % len(info["tools"])], "result": "success"}]} for i in range(32)
    ]
    singles = [client.decide(s) for s in states[:4]]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(client.decide, states))

    def probs(decision):  # batch size changes float rounding, not the answer
        return {t["tool"]: t["prob"] for t in decision["tools"]}

    for a, s in zip(answers[:4], singles, strict=True):
        assert a["tool"] == s["tool"] and probs(a) == pytest.approx(probs(s), abs=1e-5)
    unbatched = handle.decide_unbatched.remote(states[5]).result()
    assert probs(unbatched) == pytest.approx(probs(answers[5]), abs=1e-5)


def test_bad_states_and_auth(policy_server):
    from dspy_rl.serving.policy_client import PolicyClient, PolicyError

    client, _, _, cfg = policy_server
    with pytest.raises(PolicyError, match=r"state.history\[0\].tool"):
        client.decide({"history": [{"tool": "teleport"}]})
    with pytest.raises(PolicyError, match="state.obs"):
        client.decide({"obs": [1.0, 2.0]})
    with pytest.raises(PolicyError, match="max_states"):
        client.decide_many([{"history": []}] * 9)
    with pytest.raises(PolicyError, match="401"):
        PolicyClient(f"http://127.0.0.1:{cfg.port}", token="wrong").decide({"history": []})


def test_dspy_helper_orders_and_filters_react_tools(policy_server):
    dspy = pytest.importorskip("dspy")
    from dspy_rl.integrations.dspy import rank_react_tools

    client, _, _, _ = policy_server
    names = client.info()["tools"][:4]
    tools = [dspy.Tool(lambda: "ok", name=n, desc=f"the {n} tool") for n in names]
    tools.append(dspy.Tool(lambda: "x", name="my_custom_tool", desc="unknown to the policy"))
    ranking = [t["tool"] for t in client.decide({"history": [], "tools": names})["tools"]]
    agent = rank_react_tools("question -> answer", tools, client, keep_top=2)
    assert list(agent.tools)[:3] == [*ranking[:2], "my_custom_tool"]
    instructions = agent.react.signature.instructions
    assert (
        instructions.index(ranking[0]) < instructions.index(ranking[1]) < instructions.index("my_custom_tool")
    )
    assert ranking[3] not in agent.tools


def test_cli_refuses_a_text_grpo_run_in_one_line(tmp_path):
    (tmp_path / "final").mkdir()
    r = subprocess.run(
        ["dspy-rl", "serve", "policy", f"checkpoint={tmp_path}"], capture_output=True, text=True, timeout=120
    )
    # only the command's own line (a third-party import may print warnings of its own)
    lines = [line for line in r.stderr.splitlines() if line.startswith("dspy-rl")]
    assert r.returncode == 2 and len(lines) == 1 and "serve lm" in lines[0], r.stderr
