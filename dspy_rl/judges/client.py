"""Score batches with the judge ensemble from Python (the GRPO reward function).

:class:`JudgeClient` talks to a running ``judges`` Serve application either through its deployment handle
(``transport="handle"``, inside the same Ray cluster; no HTTP) or over HTTP (``transport="http"``, any
process). Items are ``{"query", "response", "reference"?, "context"?}`` dicts; :meth:`JudgeClient.score`
returns one float in [0, 1] per item, :meth:`JudgeClient.judge` the full ensemble answers.

Calls are split into chunks of ``max_batch`` items and bounded by an adaptive
:class:`~dspy_rl.control.concurrency.ConcurrencyLimiter`, so many trainer threads (or coroutines) sharing one
client never pile more in-flight requests on the service than it answers quickly.

>>> client = JudgeClient(transport="http", url="http://127.0.0.1:8000")      # doctest: +SKIP
>>> client.score([{"query": "2+2?", "response": "4", "reference": "4"}])      # doctest: +SKIP
[0.73]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import httpx

from dspy_rl.control.concurrency import ConcurrencyLimiter
from dspy_rl.control.limiter import LimiterConfig
from dspy_rl.judges.base import JudgeItem

logger = logging.getLogger(__name__)


class JudgeServiceError(RuntimeError):
    """The judge service refused or failed a request (the message carries its explanation)."""


class JudgeClient:
    """Reward-function client of the judge ensemble."""

    def __init__(
        self,
        transport: str = "handle",
        app_name: str = "judges",
        url: str = "http://127.0.0.1:8000",
        token: str | None = None,
        max_batch: int = 64,
        timeout_s: float = 30.0,
        limiter: LimiterConfig | ConcurrencyLimiter | None = None,
    ) -> None:
        if transport not in ("handle", "http"):
            raise ValueError(f"transport={transport!r}: expected 'handle' (in-cluster) or 'http'")
        if max_batch < 1 or timeout_s <= 0:
            raise ValueError("max_batch must be >= 1 and timeout_s > 0")
        self.transport = transport
        self.app_name = app_name
        self.url = url.rstrip("/")
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(limiter, ConcurrencyLimiter):
            self.limiter = limiter
        else:
            self.limiter = ConcurrencyLimiter(
                limiter or LimiterConfig(mode="gradient", base_limit=4, max_limit=32)
            )
        self._handle = None

    # ---- public API -------------------------------------------------------------------------------
    def judge(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Full ensemble answers (score, per_judge, spread, answered, left_out, explanation), in order."""
        chunks = self._chunks(items)
        out: list[dict[str, Any]] = []
        for chunk in chunks:
            with self.limiter.acquire(timeout=self.timeout_s):
                out.extend(self._send(chunk))
        return out

    def score(self, items: Sequence[dict[str, Any]]) -> list[float]:
        """One ensemble score in [0, 1] per item."""
        return [float(r["score"]) for r in self.judge(items)]

    async def ajudge(self, items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Async :meth:`judge`: chunks go out concurrently, as many as the limiter allows."""

        async def one(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            async with self.limiter.acquire_async(timeout=self.timeout_s):
                return await self._asend(chunk)

        results = await asyncio.gather(*(one(c) for c in self._chunks(items)))
        return [r for chunk in results for r in chunk]

    async def ascore(self, items: Sequence[dict[str, Any]]) -> list[float]:
        """Async :meth:`score`."""
        return [float(r["score"]) for r in await self.ajudge(items)]

    def reward_fn(
        self,
        prompts: Sequence[str],
        completions: Sequence[str],
        references: Sequence[str | None] | None = None,
    ) -> list[float]:
        """GRPO-style reward function: one score per (prompt, completion)."""
        if len(prompts) != len(completions) or (references is not None and len(references) != len(prompts)):
            raise ValueError(
                f"prompts ({len(prompts)}), completions ({len(completions)}) and references "
                f"({'-' if references is None else len(references)}) must have the same length"
            )
        refs = references if references is not None else [None] * len(prompts)
        items = [
            {"query": p, "response": c, **({"reference": r} if r is not None else {})}
            for p, c, r in zip(prompts, completions, refs, strict=True)
        ]
        return self.score(items)

    # ---- transports -------------------------------------------------------------------------------
    def _chunks(self, items: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        for i, it in enumerate(items):
            try:
                JudgeItem.from_dict(it)
            except ValueError as exc:
                raise ValueError(f"item {i}: {exc}") from exc
        return [list(items[i : i + self.max_batch]) for i in range(0, len(items), self.max_batch)]

    def _get_handle(self):
        if self._handle is None:
            from ray import serve

            self._handle = serve.get_app_handle(self.app_name)
        return self._handle

    def _send(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.transport == "handle":
            try:
                return self._get_handle().score_items.remote(chunk).result(timeout_s=self.timeout_s)
            except Exception as exc:
                raise JudgeServiceError(f"judges app {self.app_name!r}: {exc}") from exc
        with httpx.Client(timeout=self.timeout_s) as http:
            resp = http.post(f"{self.url}/judge/batch", json={"items": chunk}, headers=self.headers)
        return self._unpack(resp)

    async def _asend(self, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.transport == "handle":
            try:
                return await self._get_handle().score_items.remote(chunk)
            except Exception as exc:
                raise JudgeServiceError(f"judges app {self.app_name!r}: {exc}") from exc
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            resp = await http.post(f"{self.url}/judge/batch", json={"items": chunk}, headers=self.headers)
        return self._unpack(resp)

    def _unpack(self, resp: httpx.Response) -> list[dict[str, Any]]:
        if resp.status_code != 200:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise JudgeServiceError(f"POST {self.url}/judge/batch -> HTTP {resp.status_code}: {detail}")
        return resp.json()["results"]
