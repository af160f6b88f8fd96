"""GRPO auto mode as the dashboard sees it: its HTTP control (``dspy-rl stream auto``) and its state directory.

``status()`` asks ``<auto_url>/status`` and, when that does not answer, reads ``<auto_dir>/state.json`` and
``cycles.jsonl``; ``control("start" | "stop")`` forwards to ``POST <auto_url>/<action>``. Anything missing raises
:class:`AutoUnavailable` with the reason (the API answers 503 with it).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx

from dspy_rl.dashboard.files import read_jsonl


class AutoUnavailable(RuntimeError):
    """Auto mode cannot be reached or read; the message says why and what to set."""


def _module_present() -> bool:
    return importlib.util.find_spec("dspy_rl.stream.auto") is not None


class AutoClient:
    def __init__(self, url: str | None, state_dir: str | None, token: str | None = None, timeout_s: float = 5.0):
        self.url = url.rstrip("/") if url else None
        self.state_dir = Path(state_dir) if state_dir else None
        self.token = token
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _check(self) -> None:
        if not _module_present():
            raise AutoUnavailable(
                "auto mode not available: this build has no dspy_rl.stream.auto (`dspy-rl stream auto`)"
            )
        if self.url is None and self.state_dir is None:
            raise AutoUnavailable(
                "auto mode not available: start `dspy-rl stream auto` and pass its control address "
                "(auto_url=http://127.0.0.1:<port>) or its state directory (auto_dir=<dir>) to the dashboard"
            )

    def status(self) -> dict[str, Any]:
        self._check()
        reason = None
        if self.url is not None:
            try:
                r = httpx.get(f"{self.url}/status", headers=self._headers(), timeout=self.timeout_s)
                r.raise_for_status()
                out = r.json()
                if isinstance(out, dict):
                    out.setdefault("source", self.url)
                    out.setdefault("cycles", self._cycles())
                    return out
                reason = f"{self.url}/status answered {type(out).__name__}, not an object"
            except (httpx.HTTPError, ValueError) as exc:
                reason = f"{self.url}/status: {exc}"
        if self.state_dir is not None and (self.state_dir / "state.json").is_file():
            try:
                state = json.loads((self.state_dir / "state.json").read_text())
            except (OSError, ValueError) as exc:
                raise AutoUnavailable(f"auto mode state {self.state_dir}/state.json unreadable: {exc}") from exc
            return {
                **(state if isinstance(state, dict) else {"state": state}),
                "source": str(self.state_dir),
                "control": "unreachable" if self.url else "no auto_url",
                "control_error": reason,
                "cycles": self._cycles(),
            }
        raise AutoUnavailable(f"auto mode not available: {reason or f'no state.json in {self.state_dir}'}")

    def _cycles(self, last: int = 200) -> list[dict[str, Any]]:
        if self.state_dir is None:
            return []
        rows, _, _ = read_jsonl(self.state_dir / "cycles.jsonl")
        return rows[-last:]

    def control(self, action: str) -> dict[str, Any]:
        self._check()
        if self.url is None:
            raise AutoUnavailable("auto mode start/stop needs its control address: pass auto_url=http://127.0.0.1:<port>")
        try:
            r = httpx.post(f"{self.url}/{action}", headers=self._headers(), timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise AutoUnavailable(f"auto mode not available: POST {self.url}/{action}: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text}
        if r.status_code >= 400:
            raise AutoUnavailable(f"auto mode refused {action}: HTTP {r.status_code} {body}")
        return body if isinstance(body, dict) else {"result": body}
