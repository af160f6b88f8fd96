"""The judge service on Ray Serve: one deployment per judge, and an ensemble deployment with FastAPI ingress.

HTTP (bound to ``ServeConfig.host``, 127.0.0.1 by default):

* ``POST /judge`` — body ``{query, response, reference?, context?}`` -> ``{score, per_judge, spread, answered,
  left_out, explanation[, rewards]}``;
* ``POST /judge/batch`` — body ``{"items": [...]}`` (or a bare list) -> ``{"results": [...]}``;
* ``GET /healthz`` — ``{"status": "ok", "judges": [...]}``.

Bad bodies get 422 (413 for oversized texts or batches) with a message naming the field; with
``auth_token_env`` set, a missing or wrong ``Authorization: Bearer`` gets 401. If no judge answers in time the
reply is 503 naming each judge's reason. Python callers use the handle method ``score_items`` instead of HTTP
(:mod:`dspy_rl.judges.client`).

Judge replicas report load through ``record_autoscaling_stats`` (:class:`~dspy_rl.judges.stats.ReplicaStats`),
which the adaptive policy (:mod:`dspy_rl.control.serve_policy`) reads.
"""

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import logging
import os
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from dspy_rl.control.concurrency import ConcurrencyLimiter
from dspy_rl.control.limiter import LimiterConfig
from dspy_rl.control.serve_policy import autoscaling_config
from dspy_rl.judges.base import InvalidItem, Judge, JudgeItem
from dspy_rl.judges.config import JudgeSpec, ServeConfig
from dspy_rl.judges.ensemble import NoJudgeAnswered, judge_batch
from dspy_rl.judges.stats import ReplicaStats

logger = logging.getLogger(__name__)


def build_judge(kind: str, name: str, options: dict[str, Any]) -> Judge:
    """Instantiate a judge by kind (imports heavy dependencies only for the kinds in use)."""
    if kind == "rubric":
        from dspy_rl.judges.rubric import RubricJudge

        return RubricJudge(name=name, **options)
    if kind == "embedding":
        from dspy_rl.judges.embedding import EmbeddingJudge

        return EmbeddingJudge(name=name, **options)
    if kind == "transformer":
        from dspy_rl.judges.transformer import TransformerJudge

        return TransformerJudge(name=name, **options)
    if kind == "llm":
        from dspy_rl.judges.llm import LLMJudge

        return LLMJudge(name=name, **options)
    raise ValueError(f"unknown judge kind {kind!r}")


@serve.deployment
class JudgeReplica:
    """Runs one judge. CPU-bound judges run in a worker thread, one model call at a time per slot."""

    def __init__(self, kind: str, name: str, options: dict[str, Any], model_concurrency: int = 1) -> None:
        self.name = name
        self.judge = build_judge(kind, name, dict(options))
        self.stats = ReplicaStats(model_concurrency=model_concurrency)
        self._async = hasattr(self.judge, "ascore_batch")
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=model_concurrency, thread_name_prefix=name
        )

    async def score(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Score already-validated item dicts; returns ``[{"score", "explanation", "components"}]``."""
        async with self.stats.track():
            parsed = [JudgeItem.from_dict(it) for it in items]
            async with self.stats.model_slot():
                if self._async:
                    scores = await self.judge.ascore_batch(parsed)  # type: ignore[attr-defined]
                else:
                    loop = asyncio.get_running_loop()
                    scores = await loop.run_in_executor(self._pool, self.judge.score_batch, parsed)
            return [s.to_dict() for s in scores]

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve hook: load metrics for the adaptive autoscaling policy."""
        return self.stats.snapshot()


api = FastAPI(title="dspy-rl judges")

#: Deepest nesting of arrays/objects a request body may have (an item needs 3: list, item, context object).
MAX_JSON_DEPTH = 8


def _depth_ok(raw: bytes, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests arrays/objects at most ``limit`` deep (brackets inside strings do not
    count). Checked before parsing, so that no nesting reaches the parser's recursion."""
    depth, in_string, escaped = 0, False, False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return False
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return True


def parse_json_body(raw: bytes) -> Any:
    """A request body as JSON, or an :class:`HTTPException` (400 for bad encodings, 422 for bad JSON) whose text
    says what is wrong without echoing parser internals."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(
            400, f"body is not UTF-8 (bad byte at offset {exc.start}); send UTF-8 JSON"
        ) from None
    if not _depth_ok(raw, MAX_JSON_DEPTH):
        raise HTTPException(422, f"body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc).splitlines()[0][:120]
        raise HTTPException(422, f"body is not valid JSON{where}: {reason}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@api.exception_handler(Exception)
async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    """An unexpected error is logged here and answered without its text (which may carry node addresses)."""
    logger.exception("internal error on %s %s", request.method, request.url.path)
    return JSONResponse({"detail": "internal error in the judge service; see its log"}, status_code=500)


async def _call_judge(handle: DeploymentHandle, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = handle.score.remote(payload)
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()  # past the deadline: do not leave the judge working on it
        raise


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@serve.deployment
@serve.ingress(api)
class JudgeEnsemble:
    """Fans requests out to the judge deployments with a deadline and aggregates the answers."""

    def __init__(
        self,
        judges: dict[str, DeploymentHandle],
        weights: dict[str, float],
        deadline_s: float,
        max_text_chars: int,
        max_batch: int,
        token_sha256: str | None = None,
        shed: dict[str, dict[str, Any]] | None = None,
        max_body_bytes: int = 4 << 20,
    ) -> None:
        self.judges = judges
        self.weights = weights
        self.deadline_s = deadline_s
        self.max_text_chars = max_text_chars
        self.max_batch = max_batch
        self.max_body_bytes = max_body_bytes
        self.token_sha256 = token_sha256
        self.limiters = {name: ConcurrencyLimiter(LimiterConfig(**cfg)) for name, cfg in (shed or {}).items()}

    def _check_auth(self, request: Request) -> None:
        if self.token_sha256 is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            _token_hash(token.strip()), self.token_sha256
        ):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    def _parse(self, raw: Any) -> list[JudgeItem]:
        items = raw if isinstance(raw, list) else [raw]
        if len(items) > self.max_batch:
            raise HTTPException(
                413, f"batch of {len(items)} items; the limit is {self.max_batch} (serve.max_batch)"
            )
        if not items:
            raise HTTPException(422, "empty batch: send at least one item")
        parsed = []
        for i, it in enumerate(items):
            try:
                parsed.append(JudgeItem.from_dict(it, self.max_text_chars))
            except InvalidItem as exc:
                status = 413 if "the limit is" in str(exc) else 422
                where = f"item {i}: " if isinstance(raw, list) else ""
                raise HTTPException(status, where + str(exc)) from exc
        return parsed

    async def score_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Handle API (no HTTP): validate, fan out, aggregate. Raises ValueError / NoJudgeAnswered."""
        parsed = [JudgeItem.from_dict(it, self.max_text_chars) for it in items]
        return await self._judge(parsed)

    async def _judge(self, items: list[JudgeItem]) -> list[dict[str, Any]]:
        payload = [it.to_dict() for it in items]
        calls = {name: (lambda h=h: _call_judge(h, payload)) for name, h in self.judges.items()}
        return await judge_batch(calls, self.weights, len(items), self.deadline_s, self.limiters)

    async def _body(self, request: Request) -> Any:
        """The JSON body, read up to ``max_body_bytes`` (413 beyond), strict UTF-8 (400 otherwise), nested at
        most :data:`MAX_JSON_DEPTH` deep (422)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise HTTPException(
                413,
                f"body of {int(declared)} bytes; the limit is {self.max_body_bytes} (serve.max_body_bytes)",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise HTTPException(
                    413, f"body over {self.max_body_bytes} bytes, the limit (serve.max_body_bytes)"
                )
            chunks.append(chunk)
        return parse_json_body(b"".join(chunks))

    @api.post("/judge")
    async def judge_one(self, request: Request) -> JSONResponse:
        self._check_auth(request)
        body = await self._body(request)
        if isinstance(body, list):
            raise HTTPException(422, "POST /judge takes one object; send lists to POST /judge/batch")
        try:
            (result,) = await self._judge(self._parse(body))
        except NoJudgeAnswered as exc:
            raise HTTPException(503, str(exc)) from exc
        return JSONResponse(result)

    @api.post("/judge/batch")
    async def judge_many(self, request: Request) -> JSONResponse:
        self._check_auth(request)
        body = await self._body(request)
        if isinstance(body, dict):
            if "items" not in body:
                raise HTTPException(422, "batch body must be {'items': [...]} or a JSON list of items")
            body = body["items"]
        if not isinstance(body, list):
            raise HTTPException(422, f"'items' must be a list, got {type(body).__name__}")
        try:
            results = await self._judge(self._parse(body))
        except NoJudgeAnswered as exc:
            raise HTTPException(503, str(exc)) from exc
        return JSONResponse({"results": results})

    @api.get("/healthz")
    async def healthz(self, request: Request) -> dict[str, Any]:
        self._check_auth(request)
        return {"status": "ok", "judges": sorted(self.judges), "deadline_s": self.deadline_s}


def _scaling_options(cfg: ServeConfig, spec: JudgeSpec) -> dict[str, Any]:
    if cfg.autoscaling == "fixed":
        return {"num_replicas": spec.min_replicas}
    if cfg.autoscaling == "default":
        return {
            "autoscaling_config": {
                "min_replicas": spec.min_replicas,
                "max_replicas": spec.max_replicas,
                "target_ongoing_requests": cfg.target_ongoing_requests,
                "upscale_delay_s": cfg.upscale_delay_s,
                "downscale_delay_s": cfg.downscale_delay_s,
                "look_back_period_s": cfg.look_back_period_s,
                "metrics_interval_s": cfg.metrics_interval_s,
            }
        }
    return {
        "autoscaling_config": autoscaling_config(
            spec.min_replicas,
            spec.max_replicas,
            cfg.limiter(),
            upscale_delay_s=cfg.upscale_delay_s,
            downscale_delay_s=cfg.downscale_delay_s,
            look_back_period_s=cfg.look_back_period_s,
            metrics_interval_s=cfg.metrics_interval_s,
        )
    }


def build_app(cfg: ServeConfig, token: str | None = None) -> serve.Application:
    """The Serve application for ``cfg`` (``token``: bearer token; only its SHA-256 reaches the replicas)."""
    handles = {}
    for name, spec in cfg.enabled_judges().items():
        deployment = JudgeReplica.options(
            name=f"judge_{name}",
            max_ongoing_requests=spec.max_ongoing_requests,
            ray_actor_options={"num_cpus": spec.num_cpus},
            **_scaling_options(cfg, spec),
        )
        handles[name] = deployment.bind(spec.kind, name, dict(spec.options), spec.model_concurrency)
    weights = {name: spec.weight for name, spec in cfg.enabled_judges().items()}
    shed = None
    if cfg.shed:
        base = {k: getattr(cfg.limiter(), k) for k in LimiterConfig.__dataclass_fields__}
        # the ensemble's limiters see every call as it completes: adapt per call window, not per second
        base["adaptation_interval"] = min(base["adaptation_interval"], 0.1)
        shed = {name: dict(base) for name in handles if name not in cfg.shed_exempt}
    return JudgeEnsemble.options(
        name="ensemble",
        num_replicas=cfg.ensemble_replicas,
        max_ongoing_requests=1000,
        ray_actor_options={"num_cpus": 0},
    ).bind(
        handles,
        weights,
        cfg.deadline_s,
        cfg.max_text_chars,
        cfg.max_batch,
        _token_hash(token) if token else None,
        shed,
        cfg.max_body_bytes,
    )


def resolve_token(cfg: ServeConfig) -> str | None:
    """The bearer token from ``cfg.auth_token_env`` (error if that variable is unset or empty)."""
    if not cfg.auth_token_env:
        return None
    token = os.environ.get(cfg.auth_token_env, "")
    if not token:
        raise ValueError(
            f"auth_token_env={cfg.auth_token_env!r} but that environment variable is empty; export it or set "
            "auth_token_env=null"
        )
    return token


def deploy(cfg: ServeConfig, blocking: bool = False) -> DeploymentHandle:
    """Start Serve on ``cfg.host:cfg.port`` and run the app; returns the ingress handle. Ray is started on
    loopback (:func:`~dspy_rl.utils.ray_local.init_ray`) unless it is already initialized."""
    from dspy_rl.utils.ray_local import init_ray

    init_ray(cfg.ray_address, cfg.node_ip)
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    app = build_app(cfg, resolve_token(cfg))
    handle = serve.run(app, name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=blocking)
    logger.info("judges app %r on http://%s:%d%s", cfg.app_name, cfg.host, cfg.port, cfg.route_prefix)
    return handle
