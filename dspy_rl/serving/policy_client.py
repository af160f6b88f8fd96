"""Python client of ``dspy-rl serve policy`` (HTTP)."""

from __future__ import annotations

from typing import Any

import httpx


class PolicyError(RuntimeError):
    """The policy server refused a request (the message is its error)."""


class PolicyClient:
    """``PolicyClient("http://127.0.0.1:8002").decide({"history": [{"tool": "ls", "result": "success"}]})``."""

    def __init__(self, base_url: str, token: str | None = None, timeout_s: float = 10.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def _post(self, body: dict[str, Any]) -> Any:
        r = self._http.post("/v1/policy/decide", json=body)
        if r.status_code != 200:
            try:
                msg = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = r.text
            raise PolicyError(f"HTTP {r.status_code}: {msg}")
        return r.json()

    def decide(self, state: dict[str, Any], top_k: int | None = None) -> dict[str, Any]:
        """Ranked tools (``tools``: [{tool, prob}] best first), the top ``tool`` and its ``arg`` for one state."""
        body: dict[str, Any] = {"state": state}
        if top_k is not None:
            body["top_k"] = top_k
        return self._post(body)

    def decide_many(self, states: list[dict[str, Any]], top_k: int | None = None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"states": states}
        if top_k is not None:
            body["top_k"] = top_k
        return self._post(body)["decisions"]

    def info(self) -> dict[str, Any]:
        return self._http.get("/v1/policy/info").raise_for_status().json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
