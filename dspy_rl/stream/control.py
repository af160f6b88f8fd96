"""HTTP control of auto mode: ``GET /status``, ``GET /cycles?limit=N``, ``POST /start``, ``POST /stop``.

A stdlib threading HTTP server on 127.0.0.1 (a free port with ``port=0``) beside the auto loop; with a token,
every request needs ``Authorization: Bearer <token>`` (else 401). Bodies are JSON: ``/status``, ``/start`` and
``/stop`` answer :meth:`AutoRunner.status`; ``/cycles`` the last records of ``cycles.jsonl``, newest first.
The address is written to ``<state_dir>/control.json`` (``{"url", "host", "port", "pid", "token_required"}``).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from dspy_rl.stream.auto import AutoRunner
from dspy_rl.utils.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)


def _last_records(runner: AutoRunner, limit: int) -> list[dict[str, Any]]:
    if not runner.cycles_path.is_file():
        return []
    out = []
    for line in runner.cycles_path.read_text().splitlines()[-limit:]:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out[::-1]


class ControlServer:
    """Serves the control API for ``runner`` in a daemon thread until :meth:`close`."""

    def __init__(self, runner: AutoRunner, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.runner = runner
        self.token = token or None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:
                logger.debug("control: " + fmt, *args)

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if server.token is None:
                    return True
                given = self.headers.get("Authorization", "")
                if hmac.compare_digest(given.encode(), f"Bearer {server.token}".encode()):
                    return True
                self._send(401, {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"})
                return False

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                url = urlparse(self.path)
                if url.path == "/status":
                    self._send(200, server.runner.status())
                elif url.path == "/cycles":
                    raw = parse_qs(url.query).get("limit", ["20"])[0]
                    if not raw.isdigit() or not 1 <= int(raw) <= 10000:
                        self._send(400, {"error": f"limit={raw!r}: expected an int in [1, 10000]"})
                        return
                    self._send(200, _last_records(server.runner, int(raw)))
                else:
                    self._send(404, {"error": f"no route GET {url.path}; try /status or /cycles"})

            def do_POST(self) -> None:  # noqa: N802
                if not self._authorized():
                    return
                path = urlparse(self.path).path
                if path == "/start":
                    self._send(200, server.runner.resume())
                elif path == "/stop":
                    self._send(200, server.runner.pause())
                else:
                    self._send(404, {"error": f"no route POST {path}; try /start or /stop"})

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="auto-control", daemon=True)
        self._thread.start()
        runner.control_url = self.url
        info = {"url": self.url, "host": self.host, "port": self.port, "pid": os.getpid(),
                "token_required": self.token is not None}  # fmt: skip
        atomic_write_bytes(runner.dir / "control.json", json.dumps(info).encode())
        logger.info("auto mode control on %s (GET /status, POST /start, POST /stop)", self.url)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
        (self.runner.dir / "control.json").unlink(missing_ok=True)
