"""The real judge service (Ray Serve HTTP on 127.0.0.1) answers every client mistake with a 4xx naming what is
wrong, never a 5xx, and never echoes internal error text: deep nesting, wrong types, huge sizes, bad encodings,
malformed ``context``, NaN/Infinity constants, non-object bodies."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

APP = "judges_hostile"
ITEM = {"query": "How do I run the tests?", "response": "Run pytest -q in the repo root."}


@pytest.fixture(scope="module")
def service(ray_session, port_factory):
    from ray import serve

    from dspy_rl.judges.app import deploy
    from dspy_rl.judges.config import JudgeSpec, ServeConfig

    cfg = ServeConfig(
        port=port_factory(),
        app_name=APP,
        max_text_chars=1000,
        max_batch=4,
        max_body_bytes=64 * 1024,
        autoscaling="fixed",
        judges={"rubric": JudgeSpec(kind="rubric", weight=1.0, num_cpus=0)},
    )
    deploy(cfg)
    with httpx.Client(base_url=f"http://127.0.0.1:{cfg.port}", timeout=30) as client:
        yield client
    serve.delete(APP)
    serve.shutdown()


def _ctx(context) -> dict:
    return {**ITEM, "context": context}


NESTED = ("[" * 20_000 + "]" * 20_000).encode()  # under the byte limit: the depth check must catch it
NESTED_CONTEXT = (
    '{"query": "q", "response": "r", "context": {"coordination": ' + "[" * 5000 + "]" * 5000 + "}}"
)

BODIES = [
    # (name, path, raw body bytes, expected status, fragment of the message)
    ("deep nesting", "/judge", NESTED, 422, "deeper than"),
    ("deep nesting in context", "/judge", NESTED_CONTEXT.encode(), 422, "deeper than"),
    ("deep nesting in a batch", "/judge/batch", NESTED, 422, "deeper than"),
    ("not UTF-8", "/judge", b'{"query": "\xff\xfe", "response": "x"}', 400, "not UTF-8"),
    ("UTF-16", "/judge", json.dumps(ITEM).encode("utf-16"), 400, "not UTF-8"),
    ("lone surrogate escape", "/judge", b'{"query": "\\ud800", "response": "x"}', 200, None),
    ("truncated JSON", "/judge", b'{"query": "q", "resp', 422, "not valid JSON"),
    ("empty body", "/judge", b"", 422, "not valid JSON"),
    ("NaN constant", "/judge", b'{"query": "q", "response": "r", "context": {"coordination": {"quality": NaN}}}',
     422, "not valid JSON"),
    ("huge integer", "/judge", b'{"query": "q", "response": "r", "context": {"coordination": {"tokens": 1'
     + b"0" * 5000 + b"}}}", 422, "not valid JSON"),
    ("string body", "/judge", b'"hello"', 422, "must be an object"),
    ("number body", "/judge", b"42", 422, "must be an object"),
    ("null body", "/judge", b"null", 422, "must be an object"),
    ("batch of numbers", "/judge/batch", b"[1, 2]", 422, "item 0"),
    ("items not a list", "/judge/batch", b'{"items": "x"}', 422, "'items' must be a list"),
    ("query a list", "/judge", json.dumps({"query": ["a"], "response": "r"}).encode(), 422, "must be a string"),
    ("query huge", "/judge", json.dumps({"query": "x" * 5000, "response": "r"}).encode(), 413, "the limit is"),
    ("body over the byte limit", "/judge", json.dumps(_ctx({"tool_results": ["success"] * 20_000})).encode(),
     413, "max_body_bytes"),
    ("context a string", "/judge", json.dumps(_ctx("x")).encode(), 422, "'context' must be an object"),
    ("context a list", "/judge", json.dumps(_ctx([1])).encode(), 422, "'context' must be an object"),
    ("context unknown key", "/judge", json.dumps(_ctx({"evil": 1})).encode(), 422, "unknown context field"),
    ("tool_results not a list", "/judge", json.dumps(_ctx({"tool_results": "success"})).encode(), 422,
     "context.tool_results must be a list"),
    ("tool_results bad entry", "/judge", json.dumps(_ctx({"tool_results": ["success", {"a": 1}]})).encode(), 422,
     "context.tool_results[1]"),
    ("tool_results too many", "/judge", json.dumps(_ctx({"tool_results": ["empty"] * 5000})).encode(), 413,
     "the limit is 4096"),
    ("coordination a list", "/judge", json.dumps(_ctx({"coordination": [1, 2]})).encode(), 422,
     "context.coordination must be an object"),
    ("coordination rounds a string", "/judge", json.dumps(_ctx({"coordination": {"rounds": "2"}})).encode(), 422,
     "context.coordination.rounds"),
    ("coordination rounds a bool", "/judge", json.dumps(_ctx({"coordination": {"rounds": True}})).encode(), 422,
     "context.coordination.rounds"),
    ("coordination quality out of range", "/judge", json.dumps(_ctx({"coordination": {"quality": 7}})).encode(),
     422, "context.coordination.quality"),
    ("coordination tokens negative", "/judge", json.dumps(_ctx({"coordination": {"tokens": -1}})).encode(), 422,
     "context.coordination.tokens"),
    ("coordination unknown field", "/judge", json.dumps(_ctx({"coordination": {"x": 1}})).encode(), 422,
     "unknown context.coordination field"),
    ("good context", "/judge", json.dumps(_ctx({"tool_results": ["success", "error"],
     "coordination": {"rounds": 2, "quality": 0.5, "consensus": True, "tokens": 10}})).encode(), 200, None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "body", "status", "fragment"), BODIES, ids=[b[0] for b in BODIES])
def test_hostile_bodies_get_a_4xx_and_no_internal_text(service, name, path, body, status, fragment) -> None:
    r = service.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, (name, r.status_code, r.text[:300])
    text = r.text
    for leak in ("Traceback", "ray::", "pid=", "ip=", "\x1b[", "RayTaskError", 'File "'):
        assert leak not in text, (name, text[:300])
    if fragment is not None:
        assert fragment in r.json()["detail"], (name, r.json())
    else:
        assert r.json()["answered"] == ["rubric"] and not r.json()["left_out"]


def test_a_declared_oversize_body_is_refused_before_it_is_read(service) -> None:
    """A client that announces 1 GB and sends 2 bytes gets 413 at once (the service does not wait for the rest)."""
    host, port = service.base_url.host, service.base_url.port
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            b"POST /judge HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n{}"
        )
        status_line = sock.makefile("rb").readline().decode()
    assert status_line.split()[1] == "413", status_line


def test_the_service_still_answers_after_the_abuse(service) -> None:
    r = service.post("/judge", json=ITEM)
    assert r.status_code == 200 and 0.0 <= r.json()["score"] <= 1.0
