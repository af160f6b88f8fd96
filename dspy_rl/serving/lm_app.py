"""``serve lm``: an OpenAI-compatible HTTP server for one local causal LM, on Ray Serve with FastAPI ingress.

Endpoints (bound to ``LMServeConfig.host``, 127.0.0.1 by default):

* ``GET /v1/models``;
* ``POST /v1/chat/completions`` and ``POST /v1/completions``, with ``stream=true`` as server-sent events
  (``data: {chunk}`` lines, then ``data: [DONE]``);
* ``GET /healthz``.

With ``logprobs=true`` each choice carries OpenAI's log-prob block, every entry extended with its ``token_id``, and
the choice carries ``token_ids`` (the completion's ids) and ``prompt_token_ids``: what text GRPO and the recording
proxy need. Malformed requests get OpenAI-style 400s naming the field, bodies over ``max_body_bytes`` 413, a missing
or wrong bearer token 401.
"""

import asyncio
import concurrent.futures
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from dspy_rl.serving.lm_config import LMServeConfig
from dspy_rl.serving.lm_engine import LMEngine, TokenStep
from dspy_rl.serving.openai_protocol import (
    BearerAuth,
    ChatRequest,
    CompletionRequest,
    OpenAIError,
    error_response,
    parse_chat_request,
    parse_completion_request,
    read_json_body,
    token_sha256,
)

logger = logging.getLogger(__name__)

api = FastAPI(title="dspy-rl serve lm")


@api.exception_handler(OpenAIError)
async def _openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
    return error_response(exc)


def _sse(obj: Any) -> str:
    return f"data: {json.dumps(obj, separators=(',', ':'))}\n\n"


@serve.deployment
@serve.ingress(api)
class LMServer:
    """One replica: the model, a one-thread executor (one forward pass at a time), the HTTP handlers."""

    def __init__(self, cfg: LMServeConfig, token_hash: str | None) -> None:
        self.cfg = cfg
        self.auth = BearerAuth(token_hash)
        self.engine = LMEngine(
            cfg.model,
            model_name=cfg.model_name,
            device=cfg.device,
            tiny=cfg.tiny_kwargs(),
            chat_format=cfg.chat_format,
        )
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lm")
        self.created = int(time.time())

    def __del__(self) -> None:
        try:
            self.engine.close()
        except Exception:
            pass

    # ----- helpers -----
    def _check_model(self, req_model: str) -> None:
        if self.cfg.strict_model and req_model != self.engine.model_name:
            raise OpenAIError(
                404,
                f"'model': {req_model!r} is not served here; use {self.engine.model_name!r}",
                param="model",
            )

    async def _request(self, request: Request, parse):  # noqa: ANN001
        self.auth.check(request)
        body = await read_json_body(request, self.cfg.max_body_bytes)
        req = parse(body, self.cfg.max_tokens_limit, self.cfg.default_max_tokens)
        self._check_model(req.model)
        return req

    def _run(self, prompt_ids: list[int], req, index: int) -> list[TokenStep]:  # noqa: ANN001
        seed = None if req.seed is None else req.seed + index
        return list(
            self.engine.stream(
                prompt_ids,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                top_p=req.top_p,
                stop=req.stop,
                top_logprobs=req.top_logprobs,
                seed=seed,
            )
        )

    async def _steps_async(self, prompt_ids: list[int], req) -> AsyncIterator[TokenStep]:  # noqa: ANN001
        loop = asyncio.get_running_loop()
        it = self.engine.stream(
            prompt_ids,
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            stop=req.stop,
            top_logprobs=req.top_logprobs,
            seed=req.seed,
        )
        sentinel = object()
        while True:
            step = await loop.run_in_executor(self.pool, next, it, sentinel)
            if step is sentinel:
                return
            yield step

    def _chat_logprob_entry(self, s: TokenStep) -> dict[str, Any]:
        tok = self.engine.token_text(s.token_id)
        return {
            "token": tok,
            "logprob": s.logprob,
            "bytes": list(tok.encode("utf-8")),
            "token_id": s.token_id,
            "top_logprobs": [
                {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8")), "token_id": i}
                for i, t, lp in s.top
            ],
        }

    def _completion_logprobs(self, steps: list[TokenStep]) -> dict[str, Any]:
        offsets, pos = [], 0
        for s in steps:
            offsets.append(pos)
            pos += len(s.text)
        return {
            "tokens": [self.engine.token_text(s.token_id) for s in steps],
            "token_logprobs": [s.logprob for s in steps],
            "top_logprobs": [{t: lp for _, t, lp in s.top} for s in steps]
            if steps and steps[0].top
            else None,
            "text_offset": offsets,
            "token_ids": [s.token_id for s in steps],
        }

    @staticmethod
    def _finish(steps: list[TokenStep]) -> str:
        return (steps[-1].finish_reason if steps else None) or "length"

    # ----- endpoints -----
    @api.get("/v1/models")
    async def models(self, request: Request) -> dict[str, Any]:
        self.auth.check(request)
        return {
            "object": "list",
            "data": [
                {
                    "id": self.engine.model_name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "dspy-rl",
                }
            ],
        }

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict[str, Any]:
        self.auth.check(request)
        return {"status": "ok", "model": self.engine.model_name, "max_positions": self.engine.max_positions}

    @staticmethod
    def _usage(prompt_ids: list[int], completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": len(prompt_ids),
            "completion_tokens": completion_tokens,
            "total_tokens": len(prompt_ids) + completion_tokens,
        }

    async def _respond(
        self,
        req: ChatRequest | CompletionRequest,
        prompt_ids: list[int],
        rid: str,
        created: int,
        kind: str,
        stream: Callable[[Any, list[int], str, int], AsyncIterator[str]],
        choice: Callable[[Any, list[int], int, list[TokenStep]], tuple[dict[str, Any], int]],
    ) -> Any:
        """What both endpoints do with a parsed request: its event stream (``stream``), or its ``n`` choices
        (``choice`` builds one from the index and the steps, with its completion token count) in a ``kind``
        object with the usage."""
        if req.stream:
            if req.n != 1:
                raise OpenAIError(400, "'n': streaming supports n=1 only", param="n")
            return StreamingResponse(stream(req, prompt_ids, rid, created), media_type="text/event-stream")
        loop = asyncio.get_running_loop()
        choices, completion_tokens = [], 0
        for i in range(req.n):
            steps = await loop.run_in_executor(self.pool, self._run, prompt_ids, req, i)
            c, tokens = choice(req, prompt_ids, i, steps)
            completion_tokens += tokens
            choices.append(c)
        return {
            "id": rid,
            "object": kind,
            "created": created,
            "model": self.engine.model_name,
            "choices": choices,
            "usage": self._usage(prompt_ids, completion_tokens),
        }

    def _stream_end(
        self, base: dict[str, Any], req: ChatRequest | CompletionRequest, prompt_ids: list[int], n: int
    ) -> list[str]:
        """The last events of a stream of ``n`` tokens: the usage chunk (when asked for) and ``[DONE]``."""
        tail = []
        if req.include_usage:
            tail.append(_sse({**base, "choices": [], "usage": self._usage(prompt_ids, n)}))
        tail.append("data: [DONE]\n\n")
        return tail

    @api.post("/v1/chat/completions")
    async def chat(self, request: Request) -> Any:
        req: ChatRequest = await self._request(request, parse_chat_request)
        prompt_ids = self.engine.encode(self.engine.render_chat(req.messages))
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        return await self._respond(
            req, prompt_ids, rid, created, "chat.completion", self._chat_stream, self._chat_choice
        )

    def _chat_choice(
        self, req: ChatRequest, prompt_ids: list[int], i: int, steps: list[TokenStep]
    ) -> tuple[dict[str, Any], int]:
        choice: dict[str, Any] = {
            "index": i,
            "message": {"role": "assistant", "content": "".join(s.text for s in steps)},
            "finish_reason": self._finish(steps),
            "logprobs": None,
        }
        if req.logprobs:
            choice["logprobs"] = {
                "content": [self._chat_logprob_entry(s) for s in steps],
                "refusal": None,
            }
            choice["token_ids"] = [s.token_id for s in steps]
            choice["prompt_token_ids"] = prompt_ids
        return choice, sum(1 for s in steps if s.text or s.finish_reason != "stop")

    async def _chat_stream(
        self, req: ChatRequest, prompt_ids: list[int], rid: str, created: int
    ) -> AsyncIterator[str]:
        base = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.engine.model_name,
        }
        yield _sse(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
        n = 0
        async for s in self._steps_async(prompt_ids, req):
            n += 1
            choice: dict[str, Any] = {
                "index": 0,
                "delta": {"content": s.text},
                "finish_reason": s.finish_reason,
            }
            if req.logprobs:
                choice["logprobs"] = {"content": [self._chat_logprob_entry(s)], "refusal": None}
                choice["token_ids"] = [s.token_id]
            yield _sse({**base, "choices": [choice]})
        if n == 0:
            yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
        for event in self._stream_end(base, req, prompt_ids, n):
            yield event

    @api.post("/v1/completions")
    async def completions(self, request: Request) -> Any:
        req: CompletionRequest = await self._request(request, parse_completion_request)
        prompt_ids = self.engine.encode(req.prompt)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        return await self._respond(
            req, prompt_ids, rid, created, "text_completion", self._completion_stream, self._completion_choice
        )

    def _completion_choice(
        self, req: CompletionRequest, prompt_ids: list[int], i: int, steps: list[TokenStep]
    ) -> tuple[dict[str, Any], int]:
        text = "".join(s.text for s in steps)
        choice = {
            "index": i,
            "text": (req.prompt + text) if req.echo else text,
            "finish_reason": self._finish(steps),
            "logprobs": self._completion_logprobs(steps) if req.logprobs else None,
        }
        if req.logprobs:
            choice["prompt_token_ids"] = prompt_ids
        return choice, len(steps)

    async def _completion_stream(
        self, req: CompletionRequest, prompt_ids: list[int], rid: str, created: int
    ) -> AsyncIterator[str]:
        base = {"id": rid, "object": "text_completion", "created": created, "model": self.engine.model_name}
        n = 0
        async for s in self._steps_async(prompt_ids, req):
            n += 1
            choice = {
                "index": 0,
                "text": s.text,
                "finish_reason": s.finish_reason,
                "logprobs": self._completion_logprobs([s]) if req.logprobs else None,
            }
            yield _sse({**base, "choices": [choice]})
        for event in self._stream_end(base, req, prompt_ids, n):
            yield event


def build_app(cfg: LMServeConfig, token: str | None = None) -> serve.Application:
    """The Serve application for ``cfg`` (``token``: bearer token; only its SHA-256 reaches the replicas)."""
    actor: dict[str, Any] = {"num_cpus": cfg.num_cpus}
    if cfg.device.startswith("cuda"):
        actor["num_gpus"] = 1
    return LMServer.options(
        name="lm",
        num_replicas=cfg.replicas,
        max_ongoing_requests=cfg.max_ongoing_requests,
        ray_actor_options=actor,
    ).bind(cfg, token_sha256(token) if token else None)


def deploy(cfg: LMServeConfig, token: str | None = None, blocking: bool = False) -> Any:
    """Start Serve on ``cfg.host:cfg.port`` (Ray must be initialized) and run the app; returns its handle."""
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    handle = serve.run(
        build_app(cfg, token), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=blocking
    )
    logger.info("lm app %r on http://%s:%d%s", cfg.app_name, cfg.host, cfg.port, cfg.route_prefix)
    return handle
