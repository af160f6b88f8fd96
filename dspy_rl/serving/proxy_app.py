"""``serve proxy``: an OpenAI-compatible recording proxy on Ray Serve (FastAPI ingress).

``POST /v1/chat/completions`` and ``POST /v1/completions`` are forwarded to ``ProxyConfig.upstream`` (streaming
included: SSE lines are passed on as they arrive) and each call is recorded as spans
(:mod:`dspy_rl.serving.recording`) into a durable spool (:mod:`dspy_rl.serving.spool`) before the reply ends; the
spool delivers them to the trace store or Kafka, retrying while that is down. ``GET /v1/models`` is forwarded;
``GET /healthz`` reports the spool (backlog, delivered, last error). Upstream errors go back unchanged (status and
body) and are recorded; an unreachable upstream is a 502 in OpenAI's error shape, also recorded.
"""

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from dspy_rl.serving.openai_protocol import (
    BearerAuth,
    OpenAIError,
    error_response,
    read_json_body,
    token_sha256,
)
from dspy_rl.serving.proxy_config import ProxyConfig
from dspy_rl.serving.recording import CallResult, call_spans, conversation_trace_id
from dspy_rl.serving.sinks import KafkaDelivery, StoreDelivery
from dspy_rl.serving.spool import Spool

logger = logging.getLogger(__name__)

api = FastAPI(title="dspy-rl serve proxy")

_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


@api.exception_handler(OpenAIError)
async def _openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
    return error_response(exc)


def validate_body(body: Any, endpoint: str) -> dict[str, Any]:
    """Light checks (the upstream has the final word): an object with a model, and messages or a prompt."""
    if not isinstance(body, dict):
        raise OpenAIError(400, f"body must be a JSON object, got {type(body).__name__}")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise OpenAIError(400, "'model': required: a non-empty string", param="model")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise OpenAIError(400, "'stream': expected true or false", param="stream")
    if endpoint == "chat.completions":
        msgs = body.get("messages")
        if not isinstance(msgs, list) or not msgs:
            raise OpenAIError(
                400, "'messages': required: a non-empty list of {role, content}", param="messages"
            )
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or not isinstance(m.get("role"), str):
                raise OpenAIError(
                    400, f"'messages[{i}].role': required: a string", param=f"messages[{i}].role"
                )
    elif "prompt" not in body:
        raise OpenAIError(400, "'prompt': required", param="prompt")
    return body


def make_delivery(cfg: ProxyConfig):  # noqa: ANN201
    if cfg.sink == "kafka":
        return KafkaDelivery(cfg.kafka.bootstrap_servers, cfg.kafka.topic_prefix, cfg.deliver_timeout_s)
    return StoreDelivery(str(cfg.store), cfg.deliver_timeout_s)


@serve.deployment
@serve.ingress(api)
class RecordingProxy:
    """Forwards OpenAI calls upstream and records them through a durable spool."""

    def __init__(self, cfg: ProxyConfig, token_hash: str | None, upstream_key: str | None) -> None:
        self.cfg = cfg
        self.auth = BearerAuth(token_hash)
        self.upstream = cfg.upstream.rstrip("/")
        self.upstream_key = upstream_key
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(cfg.timeout_s, connect=10.0))
        self.delivery = make_delivery(cfg)
        self.spool = Spool(cfg.spool_dir, self.delivery)

    def __del__(self) -> None:
        try:
            self.spool.close(drain_timeout_s=3.0)
            self.delivery.close()
        except Exception:
            pass

    # ----- helpers -----
    def _headers(self, request: Request) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": request.headers.get("accept", "application/json"),
        }
        if self.upstream_key:
            headers["authorization"] = f"Bearer {self.upstream_key}"
        elif self.auth.sha256 is None and request.headers.get("authorization"):
            headers["authorization"] = request.headers["authorization"]
        return headers

    def _ids(self, request: Request, body: dict[str, Any]) -> tuple[str, str]:
        trace_id = request.headers.get(self.cfg.trace_header) or conversation_trace_id(body)
        agent_id = request.headers.get(self.cfg.agent_header) or self.cfg.agent_id
        return trace_id[:256], agent_id[:256]

    def _record(
        self,
        request_ids: tuple[str, str],
        endpoint: str,
        body: dict,
        result: CallResult,
        t0: float,
        started: float,
        stream: bool,
    ) -> None:
        spans = call_spans(
            trace_id=request_ids[0],
            agent_id=request_ids[1],
            endpoint=endpoint,
            body=body,
            result=result,
            started=started,
            latency_ms=(time.perf_counter() - t0) * 1000.0,
            stream=stream,
            upstream=self.upstream,
        )
        try:
            self.spool.append([s.to_event() for s in spans])
        except Exception as exc:  # never fail the caller's call because recording failed
            logger.error("proxy: could not spool %d spans: %s", len(spans), exc)

    # ----- endpoints -----
    @api.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Response:
        return await self._forward(request, "chat.completions", "/chat/completions")

    @api.post("/v1/completions")
    async def completions(self, request: Request) -> Response:
        return await self._forward(request, "completions", "/completions")

    @api.get("/v1/models")
    async def models(self, request: Request) -> Response:
        self.auth.check(request)
        try:
            r = await self.client.get(self.upstream + "/models", headers=self._headers(request))
        except httpx.HTTPError as exc:
            raise OpenAIError(502, f"upstream {self.upstream} unreachable: {exc}") from exc
        return Response(r.content, status_code=r.status_code, media_type=r.headers.get("content-type"))

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict[str, Any]:
        self.auth.check(request)
        return {
            "status": "ok",
            "upstream": self.upstream,
            "sink": self.cfg.sink,
            "spool_backlog": self.spool.backlog(),
            "delivered": self.spool.delivered,
            "delivery_failures": self.spool.failures,
            "last_error": self.spool.last_error,
        }

    async def _forward(self, request: Request, endpoint: str, path: str) -> Response:
        self.auth.check(request)
        body = validate_body(await read_json_body(request, self.cfg.max_body_bytes), endpoint)
        ids = self._ids(request, body)
        started, t0 = time.time(), time.perf_counter()
        url = self.upstream + path
        if body.get("stream"):
            return await self._forward_stream(request, endpoint, url, body, ids, started, t0)
        try:
            r = await self.client.post(url, json=body, headers=self._headers(request))
        except httpx.HTTPError as exc:
            err = OpenAIError(502, f"upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}")
            self._record(ids, endpoint, body, CallResult(status=502, error=err.body()), t0, started, False)
            raise err from exc
        try:
            parsed: Any = r.json()
        except ValueError:
            parsed = r.text
        self._record(ids, endpoint, body, CallResult.from_body(r.status_code, parsed), t0, started, False)
        headers = {k: v for k, v in r.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["x-trace-id"] = ids[0]
        return Response(r.content, status_code=r.status_code, headers=headers)

    async def _forward_stream(
        self,
        request: Request,
        endpoint: str,
        url: str,
        body: dict,
        ids: tuple[str, str],
        started: float,
        t0: float,
    ) -> Response:
        req = self.client.build_request("POST", url, json=body, headers=self._headers(request))
        try:
            r = await self.client.send(req, stream=True)
        except httpx.HTTPError as exc:
            err = OpenAIError(502, f"upstream {self.upstream} unreachable: {type(exc).__name__}: {exc}")
            self._record(ids, endpoint, body, CallResult(status=502, error=err.body()), t0, started, True)
            raise err from exc
        if r.status_code >= 400:  # errors come back whole and unchanged
            content = await r.aread()
            await r.aclose()
            try:
                parsed: Any = json.loads(content)
            except ValueError:
                parsed = content.decode("utf-8", "replace")
            self._record(
                ids, endpoint, body, CallResult(status=r.status_code, error=parsed), t0, started, True
            )
            headers = {k: v for k, v in r.headers.items() if k.lower() not in _HOP_HEADERS}
            return Response(content, status_code=r.status_code, headers=headers)

        result = CallResult(status=r.status_code)

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for line in r.aiter_lines():
                    yield (line + "\n").encode()
                    if line.startswith("data:"):
                        data = line[5:].strip()
                        if data and data != "[DONE]":
                            try:
                                result.add_chunk(json.loads(data))
                            except (ValueError, AttributeError, TypeError):
                                logger.debug("proxy: unparsable stream line %r", data[:200])
            except httpx.HTTPError as exc:
                result.error = f"stream interrupted: {type(exc).__name__}: {exc}"
                raise
            finally:
                await r.aclose()
                self._record(ids, endpoint, body, result, t0, started, True)

        return StreamingResponse(
            relay(), status_code=r.status_code, media_type="text/event-stream", headers={"x-trace-id": ids[0]}
        )


def build_app(
    cfg: ProxyConfig, token: str | None = None, upstream_key: str | None = None
) -> serve.Application:
    """The Serve application (one replica: it owns the spool directory)."""
    return RecordingProxy.options(
        name="proxy", num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0}
    ).bind(cfg, token_sha256(token) if token else None, upstream_key)


def deploy(cfg: ProxyConfig, token: str | None = None, upstream_key: str | None = None) -> Any:
    """Start Serve on ``cfg.host:cfg.port`` (Ray must be initialized) and run the proxy app.

    Relative ``store`` and ``spool_dir`` are made absolute here (the replica runs in another process).
    """
    import dataclasses
    import os

    cfg = dataclasses.replace(
        cfg,
        spool_dir=os.path.abspath(cfg.spool_dir),
        store=os.path.abspath(cfg.store) if cfg.store else cfg.store,
    )
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    handle = serve.run(build_app(cfg, token, upstream_key), name=cfg.app_name, route_prefix=cfg.route_prefix)
    logger.info(
        "proxy app %r on http://%s:%d%s -> %s",
        cfg.app_name,
        cfg.host,
        cfg.port,
        cfg.route_prefix,
        cfg.upstream,
    )
    return handle


def new_trace_id() -> str:
    return uuid.uuid4().hex
