"""The judge service end to end: real Ray Serve, real HTTP on 127.0.0.1, a killed replica and a slow judge."""

from __future__ import annotations

import time

import httpx
import pytest

TOKEN_ENV = "DSPY_RL_TEST_JUDGE_TOKEN"
TOKEN = "test-token-123"
APP = "judges_test"
ITEM = {
    "query": "How do I fix the failing parser test?",
    "response": "First run pytest -k parser.\n\n- Fix the assertion in parser.py because it expects None.",
    "reference": "Run pytest on the parser tests and fix the wrong assertion in parser.py.",
}


@pytest.fixture(scope="module")
def judges_app(ray_session, tiny_checkpoint, openai_stub_module, port_factory, monkeypatch_module):
    from ray import serve

    from dspy_rl.judges.app import deploy
    from dspy_rl.judges.config import JudgeSpec, ServeConfig

    url, stub = openai_stub_module
    monkeypatch_module.setenv(TOKEN_ENV, TOKEN)
    cfg = ServeConfig(
        port=port_factory(),
        app_name=APP,
        deadline_s=1.5,
        max_text_chars=2000,
        max_batch=4,
        auth_token_env=TOKEN_ENV,
        autoscaling="fixed",
        judges={
            "rubric": JudgeSpec(kind="rubric", weight=1.0, num_cpus=0),
            "transformer": JudgeSpec(
                kind="transformer", weight=2.0, num_cpus=0, options={"checkpoint": str(tiny_checkpoint)}
            ),
            "llm": JudgeSpec(
                kind="llm",
                weight=1.0,
                num_cpus=0,
                model_concurrency=4,
                options={"base_url": url, "model": "stub", "timeout_s": 10.0},
            ),
        },
    )
    handle = deploy(cfg)
    base = f"http://127.0.0.1:{cfg.port}"
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as client:
        yield client, handle, stub, cfg
    serve.delete(APP)
    serve.shutdown()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_judge_returns_the_weighted_ensemble(judges_app):
    client, _, stub, _ = judges_app
    stub.delay_s = 0.0
    r = client.post("/judge", json=ITEM)
    assert r.status_code == 200, r.text
    out = r.json()
    assert sorted(out["answered"]) == ["llm", "rubric", "transformer"] and out["left_out"] == {}
    pj = out["per_judge"]
    assert pj["llm"] == pytest.approx(0.8)  # the stub grades 8/10
    assert out["score"] == pytest.approx((pj["rubric"] + 2 * pj["transformer"] + pj["llm"]) / 4)
    assert out["spread"] == pytest.approx(max(pj.values()) - min(pj.values()))
    assert "rubric" in out["explanation"] and "LLM grade 8" in out["explanation"]
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["judges"] == ["llm", "rubric", "transformer"]


def test_batch_and_rewards_from_context(judges_app):
    client, _, _, _ = judges_app
    items = [ITEM, {**ITEM, "context": {"tool_results": ["success", "error", "empty"]}}]
    r = client.post("/judge/batch", json={"items": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2 and "rewards" not in results[0]
    assert results[1]["rewards"] == {"tool_reward": -0.5}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/judge", {"query": "q"}, 422, "missing field 'response'"),
        ("/judge", {"query": "q", "response": 3}, 422, "'response' must be a string"),
        ("/judge", {"query": "q", "response": "x" * 2001}, 413, "the limit is 2000"),
        ("/judge", [ITEM], 422, "send lists to POST /judge/batch"),
        ("/judge/batch", {"items": [ITEM] * 5}, 413, "the limit is 4"),
        ("/judge/batch", {"items": [ITEM, {"query": "q"}]}, 422, "item 1: missing field 'response'"),
        ("/judge/batch", {"things": []}, 422, "{'items': [...]}"),
    ],
)
def test_invalid_bodies_get_4xx_with_a_message(judges_app, path, body, status, message):
    client, _, _, _ = judges_app
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]


def test_not_json_and_auth(judges_app):
    client, _, _, cfg = judges_app
    r = client.post("/judge", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    base = f"http://127.0.0.1:{cfg.port}"
    assert httpx.post(f"{base}/judge", json=ITEM).status_code == 401
    r = httpx.get(f"{base}/healthz", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]


def test_slow_judge_is_left_out_and_named(judges_app):
    client, _, stub, _ = judges_app
    stub.delay_s = 3.0  # > deadline_s = 1.5
    try:
        out = client.post("/judge", json=ITEM).json()
    finally:
        stub.delay_s = 0.0
    assert "llm" not in out["answered"] and out["left_out"]["llm"] == "timeout after 1.5s"
    pj = out["per_judge"]
    assert out["score"] == pytest.approx((pj["rubric"] + 2 * pj["transformer"]) / 3)  # renormalized
    assert "left out: llm (timeout after 1.5s)" in out["explanation"]


def test_killed_replica_is_left_out_then_recovers(judges_app):
    import ray

    client, _, _, _ = judges_app
    # Serve names replica actors SERVE_REPLICA::<app>#<deployment>#<id> (listed by the GCS, no dashboard needed)
    victims = [
        a
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["name"].startswith(f"SERVE_REPLICA::{APP}#judge_transformer#")
    ]
    assert victims, "no transformer replica actor found"
    for actor in victims:
        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
    out = client.post("/judge", json=ITEM)
    assert out.status_code == 200, out.text
    body = out.json()
    assert "transformer" not in body["answered"] and "transformer" in body["left_out"]
    assert sorted(body["answered"]) == ["llm", "rubric"]
    # Serve replaces the replica; the judge comes back without redeploying
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = client.post("/judge", json=ITEM).json()
        if "transformer" in body["answered"]:
            break
        time.sleep(1.0)
    assert "transformer" in body["answered"], body["left_out"]


def test_client_scores_through_handle_and_http(judges_app):
    from dspy_rl.judges.client import JudgeClient, JudgeServiceError

    client, _, _, cfg = judges_app
    items = [ITEM, {"query": "2+2?", "response": "4", "reference": "4"}]
    expected = [r["score"] for r in client.post("/judge/batch", json={"items": items}).json()["results"]]
    via_handle = JudgeClient(transport="handle", app_name=APP, max_batch=1).score(items)
    via_http = JudgeClient(transport="http", url=f"http://127.0.0.1:{cfg.port}", token=TOKEN).score(items)
    assert all(isinstance(x, float) for x in via_handle + via_http)
    assert via_handle == pytest.approx(expected, abs=1e-6) and via_http == pytest.approx(expected, abs=1e-6)
    rewards = JudgeClient(transport="handle", app_name=APP).reward_fn(["2+2?"], ["4"], ["4"])
    assert rewards == pytest.approx(expected[1:], abs=1e-6)
    with pytest.raises(JudgeServiceError, match="401"):
        JudgeClient(transport="http", url=f"http://127.0.0.1:{cfg.port}").score(items)
    with pytest.raises(ValueError, match="item 0: missing field 'response'"):
        JudgeClient(transport="handle", app_name=APP).score([{"query": "q"}])
