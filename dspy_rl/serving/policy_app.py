"""``serve policy``: tool decisions from a trained run on Ray Serve, with dynamic batching (``@serve.batch``).

HTTP (bound to 127.0.0.1 by default): ``POST /v1/policy/decide`` with ``{"state": {...}}`` -> one decision, or
``{"states": [...]}`` -> ``{"decisions": [...]}`` (states: see :mod:`dspy_rl.serving.policy_engine`; ``top_k``
optional); ``GET /v1/policy/info``; ``GET /healthz``. Each state goes through the batcher, so concurrent requests
share one forward pass. Python callers use :class:`dspy_rl.serving.policy_client.PolicyClient` (HTTP) or the
handle methods ``decide`` (batched) / ``decide_unbatched``.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from dspy_rl.serving.openai_protocol import (
    BearerAuth,
    OpenAIError,
    error_response,
    read_json_body,
    token_sha256,
)
from dspy_rl.serving.policy_config import PolicyServeConfig
from dspy_rl.serving.policy_engine import BadState, PolicyEngine

api = FastAPI(title="dspy-rl serve policy")


@api.exception_handler(OpenAIError)
async def _error(request: Request, exc: OpenAIError) -> JSONResponse:
    return error_response(exc)


@serve.deployment
@serve.ingress(api)
class PolicyServer:
    def __init__(self, cfg: PolicyServeConfig, token_hash: str | None) -> None:
        import torch

        torch.set_num_threads(1)
        self.cfg = cfg
        self.auth = BearerAuth(token_hash)
        self.engine = PolicyEngine(str(cfg.checkpoint))
        self._batched.set_max_batch_size(cfg.max_batch_size)
        self._batched.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.002)
    async def _batched(self, states: list[Any]) -> list[dict[str, Any]]:
        # a bad state must not fail its batch-mates: validate one by one, decide the good ones together
        good, out = [], [None] * len(states)
        for i, s in enumerate(states):
            try:
                self.engine._row(s, "state")
                good.append(i)
            except BadState as exc:
                out[i] = {"error": str(exc)}
        for i, d in zip(good, self.engine.decide([states[i] for i in good]), strict=True):
            out[i] = d
        return out

    async def decide(self, state: Any) -> dict[str, Any]:
        """Handle API: one state through the dynamic batcher."""
        return await self._batched(state)

    async def decide_unbatched(self, state: Any) -> dict[str, Any]:
        """Handle API: one state, its own forward pass (the bench's baseline)."""
        try:
            return self.engine.decide([state])[0]
        except BadState as exc:
            return {"error": str(exc)}

    @api.post("/v1/policy/decide")
    async def http_decide(self, request: Request) -> Any:
        self.auth.check(request)
        body = await read_json_body(request, self.cfg.max_body_bytes)
        if not isinstance(body, dict) or ("state" in body) == ("states" in body):
            raise OpenAIError(400, "body must be {'state': {...}} or {'states': [...]}", param="state")
        top_k = body.get("top_k")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise OpenAIError(400, "'top_k': expected an int >= 1", param="top_k")
        single = "state" in body
        states = [body["state"]] if single else body["states"]
        if not isinstance(states, list) or not states:
            raise OpenAIError(400, "'states': expected a non-empty list", param="states")
        if len(states) > self.cfg.max_states:
            raise OpenAIError(413, f"{len(states)} states; the limit is {self.cfg.max_states} (max_states)")
        if single:  # one state: through the dynamic batcher, shared with concurrent requests
            decisions = [await self._batched(states[0])]
            if "error" in decisions[0]:
                msg = decisions[0]["error"]
                raise OpenAIError(400, msg, param=msg.split(":")[0])
        else:  # a client-side batch is already a batch: one forward pass
            try:
                decisions = self.engine.decide(states)
            except BadState as exc:
                raise OpenAIError(400, str(exc), param=str(exc).split(":")[0]) from exc
        if top_k is not None:
            for d in decisions:
                d["tools"] = d["tools"][:top_k]
        return decisions[0] if single else {"decisions": decisions}

    @api.get("/v1/policy/info")
    async def info(self, request: Request) -> dict[str, Any]:
        self.auth.check(request)
        return self.engine.info()

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict[str, Any]:
        self.auth.check(request)
        return {"status": "ok", "checkpoint": self.engine.checkpoint}


def build_app(cfg: PolicyServeConfig, token: str | None = None) -> serve.Application:
    return PolicyServer.options(
        name="policy",
        num_replicas=cfg.replicas,
        max_ongoing_requests=cfg.max_ongoing_requests,
        ray_actor_options={"num_cpus": cfg.num_cpus},
    ).bind(cfg, token_sha256(token) if token else None)


def deploy(cfg: PolicyServeConfig, token: str | None = None) -> Any:
    """Start Serve on ``cfg.host:cfg.port`` (Ray must be initialized) and run the policy app; returns its handle."""
    import dataclasses
    import os

    cfg = dataclasses.replace(cfg, checkpoint=os.path.abspath(str(cfg.checkpoint)))
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    return serve.run(build_app(cfg, token), name=cfg.app_name, route_prefix=cfg.route_prefix)
