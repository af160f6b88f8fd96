"""LLM judge: asks a model behind an OpenAI-compatible ``/chat/completions`` endpoint for a 0-10 grade.

Off by default (``judges.llm.enabled=false``). The request is a standard chat-completions body (``model``,
``messages``, ``temperature``, ``max_tokens``); the API key is read from the environment variable named by
``api_key_env`` (never stored in configs). The reply must contain ``SCORE: <number 0-10>``; a reply without
one is an error (the ensemble then leaves this judge out for that item).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from typing import Any

import httpx

from dspy_rl.judges.base import JudgeItem, JudgeScore, clip01

SYSTEM_PROMPT = (
    "You grade answers written by a coding agent. Judge correctness, completeness and clarity. "
    "Reply with one short sentence of justification, then a final line 'SCORE: <0-10>'."
)
_SCORE = re.compile(r"SCORE\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.I)


class LLMJudgeError(RuntimeError):
    """The endpoint failed or answered without a parsable score."""


def build_messages(item: JudgeItem) -> list[dict[str, str]]:
    """The chat messages sent for one item."""
    user = f"Question:\n{item.query}\n\nAnswer:\n{item.response}"
    if item.reference:
        user += f"\n\nReference answer:\n{item.reference}"
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def parse_score(text: str) -> float:
    """The last ``SCORE: x`` in ``text`` as a float in [0, 10]; :class:`LLMJudgeError` if absent or out of range."""
    found = _SCORE.findall(text or "")
    if not found:
        raise LLMJudgeError(f"no 'SCORE: <0-10>' in the model reply: {text[:200]!r}")
    value = float(found[-1])
    if not 0.0 <= value <= 10.0:
        raise LLMJudgeError(f"score {value} is outside 0-10")
    return value


class LLMJudge:
    """Chat-completions client; ``score_batch`` sends the items concurrently (``max_concurrency`` at a time)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        name: str = "llm",
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 30.0,
        max_concurrency: int = 8,
        temperature: float = 0.0,
        max_tokens: int = 128,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"judges.llm.base_url={base_url!r}: expected an http(s) URL ending before /chat/completions"
            )
        if max_concurrency < 1 or timeout_s <= 0:
            raise ValueError("judges.llm.max_concurrency must be >= 1 and timeout_s > 0")
        self.name = name
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        key = os.environ.get(api_key_env) if api_key_env else None
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        # reused across ascore_batch calls (connection keep-alive); bound to the event loop that created it
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    async def ascore_one(self, client: httpx.AsyncClient, item: JudgeItem) -> JudgeScore:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(item),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        try:
            resp = await client.post(self.url, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise LLMJudgeError(f"POST {self.url} failed: {exc!r}") from exc
        if resp.status_code != 200:
            raise LLMJudgeError(f"POST {self.url} -> HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            text = resp.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMJudgeError(f"reply is not a chat.completion object: {resp.text[:200]}") from exc
        grade = parse_score(text)
        reason = text.strip().splitlines()[0][:160] if text.strip() else ""
        return JudgeScore(clip01(grade / 10.0), f"LLM grade {grade:g}/10: {reason}", {"grade": grade})

    async def _gather(self, client: httpx.AsyncClient, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        sem = asyncio.Semaphore(self.max_concurrency)

        async def one(item: JudgeItem) -> JudgeScore:
            async with sem:
                return await self.ascore_one(client, item)

        return list(await asyncio.gather(*(one(it) for it in items)))

    async def ascore_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        """Score concurrently over a kept-alive client; the first failure is raised (the batch counts as failed)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
            self._client_loop = loop
        return await self._gather(self._client, items)

    def score_batch(self, items: Sequence[JudgeItem]) -> list[JudgeScore]:
        async def run() -> list[JudgeScore]:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                return await self._gather(client, items)

        return asyncio.run(run())
