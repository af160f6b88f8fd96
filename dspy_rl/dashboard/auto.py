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
    """Reads and drives one auto mode instance: ``url`` (its control API) or the one named in
    ``<state_dir>/control.json``; ``token`` is auto mode's own bearer token (``DSPY_RL_AUTO_TOKEN``)."""

    def __init__(
        self, url: str | None, state_dir: str | None, token: str | None = None, timeout_s: float = 5.0
    ):
        self.url = url.rstrip("/") if url else None
        self.state_dir = Path(state_dir) if state_dir else None
        self.token = token
        self.timeout_s = timeout_s

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _control_url(self) -> str | None:
        if self.url:
            return self.url
        if self.state_dir is not None:
            try:
                info = json.loads((self.state_dir / "control.json").read_text())
            except (OSError, ValueError):
                return None
            url = info.get("url") if isinstance(info, dict) else None
            return url.rstrip("/") if isinstance(url, str) else None
        return None

    def _check(self) -> None:
        if not _module_present():
            raise AutoUnavailable(
                "auto mode not available: this build has no dspy_rl.stream.auto (`dspy-rl stream auto`)"
            )
        has_state = self.state_dir is not None and any(
            (self.state_dir / f).is_file() for f in ("state.json", "control.json")
        )
        if self.url is None and not has_state:
            where = f"no auto mode state in {self.state_dir}" if self.state_dir else "no auto mode configured"
            raise AutoUnavailable(
                f"auto mode not available: {where}; start `dspy-rl stream auto --state-dir <dir> --port 0` and pass "
                "auto_dir=<dir> (or auto_url=http://127.0.0.1:<port>) to the dashboard"
            )

    def _get(self, url: str) -> Any:
        r = httpx.get(url, headers=self._headers(), timeout=self.timeout_s)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict[str, Any]:
        """Auto mode's status (``running``, ``paused``, ``in_cycle``, ``levels``, ``cycle``, ...) and ``cycles``
        (its cycle records, oldest first), from the control API, else from the state directory."""
        self._check()
        url = self._control_url()
        reason = None
        if url is not None:
            try:
                out = self._get(f"{url}/status")
                if not isinstance(out, dict):
                    raise ValueError(f"{url}/status answered {type(out).__name__}, not an object")
                cycles = self._get(f"{url}/cycles?limit=200")
                out["cycles"] = cycles[::-1] if isinstance(cycles, list) else self._cycles()
                out.update(source=url, control="reachable")
                return out
            except (httpx.HTTPError, ValueError) as exc:
                reason = f"{url}: {exc}"
        if self.state_dir is not None and (self.state_dir / "state.json").is_file():
            try:
                state = json.loads((self.state_dir / "state.json").read_text())
            except (OSError, ValueError) as exc:
                raise AutoUnavailable(
                    f"auto mode state {self.state_dir}/state.json unreadable: {exc}"
                ) from exc
            state = state if isinstance(state, dict) else {}
            return {
                **state,
                "running": False,
                "paused": bool(state.get("paused")),
                "source": str(self.state_dir),
                "control": "unreachable" if url else "not serving (no control.json)",
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
        """``POST /start`` or ``/stop`` on the control API; returns auto mode's status."""
        self._check()
        url = self._control_url()
        if url is None:
            raise AutoUnavailable(
                f"auto mode not available for {action}: no control API (no control.json in {self.state_dir}); "
                "start `dspy-rl stream auto --port 0` or pass auto_url="
            )
        try:
            r = httpx.post(f"{url}/{action}", headers=self._headers(), timeout=self.timeout_s)
        except httpx.HTTPError as exc:
            raise AutoUnavailable(f"auto mode not available: POST {url}/{action}: {exc}") from exc
        try:
            body = r.json()
        except ValueError:
            body = {"detail": r.text}
        if r.status_code >= 400:
            raise AutoUnavailable(f"auto mode refused {action}: HTTP {r.status_code} {body}")
        return body if isinstance(body, dict) else {"result": body}
