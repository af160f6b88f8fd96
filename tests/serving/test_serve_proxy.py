"""`serve proxy` end to end: the real `openai` client -> proxy (Ray Serve) -> `serve lm` (Ray Serve), recording
into a real SQLite trace store; the store made unavailable mid-run loses nothing."""

from __future__ import annotations

import sqlite3
import time
import uuid

import httpx
import openai
import pytest

from tests.serving.conftest import free_port


@pytest.fixture(scope="module")
def stack(ray_session, tmp_path_factory):
    """`serve lm` at /lm and `serve proxy` at /proxy on one Serve HTTP server; yields (proxy url, lm url, db, cfg)."""
    from ray import serve

    from dspy_rl.serving import lm_app, proxy_app
    from dspy_rl.serving.lm_config import LMServeConfig
    from dspy_rl.serving.proxy_config import ProxyConfig

    tmp = tmp_path_factory.mktemp("proxy")
    port = free_port()
    suffix = uuid.uuid4().hex[:6]
    lm = LMServeConfig(port=port, app_name=f"lm_{suffix}", route_prefix="/lm", num_cpus=0)
    lm_app.deploy(lm)
    lm_url = f"http://127.0.0.1:{port}/lm/v1"
    db = tmp / "traces.db"
    cfg = ProxyConfig(
        upstream=lm_url,
        port=port,
        store=str(db),
        spool_dir=str(tmp / "spool"),
        app_name=f"proxy_{suffix}",
        route_prefix="/proxy",
        deliver_timeout_s=0.5,
        max_body_bytes=8192,
    )
    proxy_app.deploy(cfg)
    yield f"http://127.0.0.1:{port}/proxy/v1", lm_url, db, cfg
    serve.delete(cfg.app_name)
    serve.delete(lm.app_name)
    serve.shutdown()


def _spans(db, kind: str | None = None, trace_id: str | None = None) -> list[dict]:
    from dspy_rl.traces.store import TraceStore

    with TraceStore(db) as store:
        spans = list(store.iter_spans())
    return [
        {"trace_id": s.trace_id, "kind": s.kind, "name": s.name, "span_id": s.span_id, **s.attributes}
        for s in spans
        if (kind is None or s.kind == kind) and (trace_id is None or s.trace_id == trace_id)
    ]


def _drained(proxy_url: str, timeout_s: float = 30.0) -> dict:
    deadline = time.time() + timeout_s
    while True:
        health = httpx.get(proxy_url.replace("/v1", "/healthz")).json()
        if health["spool_backlog"] == 0 or time.time() > deadline:
            return health
        time.sleep(0.2)


def test_chat_is_forwarded_unchanged_and_recorded_with_token_ids(stack):
    proxy_url, lm_url, db, _ = stack
    kw = dict(
        model="tiny-gpt2",
        messages=[{"role": "user", "content": "fix the test"}],
        max_tokens=5,
        seed=7,
        logprobs=True,
    )
    direct = openai.OpenAI(base_url=lm_url, api_key="x").chat.completions.create(**kw)
    proxied = openai.OpenAI(base_url=proxy_url, api_key="x").chat.completions.create(
        extra_headers={"x-trace-id": "trace-A", "x-agent-id": "agent-1"}, **kw
    )
    assert proxied.choices[0].message.content == direct.choices[0].message.content
    assert proxied.choices[0].model_extra["token_ids"] == direct.choices[0].model_extra["token_ids"]
    assert _drained(proxy_url)["spool_backlog"] == 0
    (span,) = _spans(db, "prompt", "trace-A")
    assert span["response"] == proxied.choices[0].message.content
    assert span["messages"] == kw["messages"] and "user: fix the test" in span["prompt"]
    assert span["token_ids"] == proxied.choices[0].model_extra["token_ids"]
    assert span["logprobs"] == pytest.approx([c.logprob for c in proxied.choices[0].logprobs.content])
    assert span["status_code"] == 200 and span["latency_ms"] > 0 and span["stream"] is False


def test_streaming_is_relayed_and_recorded(stack):
    proxy_url, _, db, _ = stack
    client = openai.OpenAI(base_url=proxy_url, api_key="x")
    chunks = list(
        client.chat.completions.create(
            model="tiny-gpt2",
            messages=[{"role": "user", "content": "stream please"}],
            max_tokens=6,
            seed=3,
            stream=True,
            logprobs=True,
            extra_headers={"x-trace-id": "trace-S"},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 2
    _drained(proxy_url)
    (span,) = _spans(db, "prompt", "trace-S")
    assert span["stream"] is True and span["response"] == text
    assert len(span["token_ids"]) == len(span["logprobs"]) >= 1
    assert span["finish_reason"] in ("stop", "length")


def test_one_trace_per_conversation_and_tool_results_become_tool_spans(stack):
    proxy_url, _, db, _ = stack
    client = openai.OpenAI(base_url=proxy_url, api_key="x")
    opening = [{"role": "system", "content": f"agent {uuid.uuid4().hex}"}, {"role": "user", "content": "ls"}]
    client.chat.completions.create(model="tiny-gpt2", messages=opening, max_tokens=2)
    call = {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": '{"path": "."}'}}
    turn2 = [
        *opening,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a.py b.py"},
    ]
    client.chat.completions.create(model="tiny-gpt2", messages=turn2, max_tokens=2)
    call2 = {"id": "call_2", "type": "function", "function": {"name": "cat", "arguments": '{"path": "x"}'}}
    turn3 = [
        *turn2,
        {"role": "assistant", "content": None, "tool_calls": [call2]},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: no such file x"},
    ]
    client.chat.completions.create(model="tiny-gpt2", messages=turn3, max_tokens=2)
    _drained(proxy_url)
    prompts = [s for s in _spans(db, "prompt") if s["messages"][0] == opening[0]]
    assert len(prompts) == 3 and len({p["trace_id"] for p in prompts}) == 1
    tools = _spans(db, "tool", prompts[0]["trace_id"])
    # call_1 was repeated in turn 3's messages: stored once
    assert sorted((t["tool"], t["status"], str(t["args"])) for t in tools) == [
        ("cat", "failure", "{'path': 'x'}"),
        ("ls", "success", "{'path': '.'}"),
    ]


def test_upstream_errors_come_back_unchanged_and_are_recorded(stack):
    proxy_url, lm_url, db, _ = stack
    bad = dict(model="tiny-gpt2", messages=[{"role": "user", "content": "x"}], max_tokens=10**7)
    with pytest.raises(openai.BadRequestError) as direct:
        openai.OpenAI(base_url=lm_url, api_key="x", max_retries=0).chat.completions.create(**bad)
    with pytest.raises(openai.BadRequestError) as proxied:
        openai.OpenAI(base_url=proxy_url, api_key="x", max_retries=0).chat.completions.create(
            extra_headers={"x-trace-id": "trace-E"}, **bad
        )
    assert proxied.value.body == direct.value.body
    with pytest.raises(openai.BadRequestError) as streamed:
        openai.OpenAI(base_url=proxy_url, api_key="x", max_retries=0).chat.completions.create(
            stream=True, extra_headers={"x-trace-id": "trace-E"}, **bad
        )
    assert streamed.value.body == direct.value.body
    _drained(proxy_url)
    spans = _spans(db, "prompt", "trace-E")
    assert len(spans) == 2 and all(s["status_code"] == 400 for s in spans)
    assert all(s["error"]["error"]["param"] == "max_tokens" for s in spans)


def test_malformed_requests_are_refused_by_the_proxy(stack):
    proxy_url, *_ = stack
    r = httpx.post(f"{proxy_url}/chat/completions", json={"model": "m", "messages": "hi"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"
    r = httpx.post(f"{proxy_url}/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(f"{proxy_url}/chat/completions", content=b"x" * 9000)
    assert r.status_code == 413


def test_store_unavailable_calls_succeed_and_records_arrive_later(stack):
    """An exclusive lock on the SQLite file makes the store refuse writes; calls go on, the spool keeps the records."""
    proxy_url, _, db, _ = stack
    client = openai.OpenAI(base_url=proxy_url, api_key="x", max_retries=0)
    blocker = sqlite3.connect(db, timeout=30, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(5):
            r = client.chat.completions.create(
                model="tiny-gpt2",
                messages=[{"role": "user", "content": f"call {i}"}],
                max_tokens=2,
                extra_headers={"x-trace-id": "trace-DOWN"},
            )
            assert r.choices
        deadline = time.time() + 20
        health = httpx.get(proxy_url.replace("/v1", "/healthz")).json()
        while health["last_error"] is None and time.time() < deadline:
            time.sleep(0.2)
            health = httpx.get(proxy_url.replace("/v1", "/healthz")).json()
        assert health["spool_backlog"] >= 5 and "locked" in health["last_error"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert _drained(proxy_url)["spool_backlog"] == 0
    spans = _spans(db, "prompt", "trace-DOWN")
    assert sorted(s["messages"][0]["content"] for s in spans) == [f"call {i}" for i in range(5)]
