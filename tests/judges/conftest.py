"""Fixtures for judge tests: a local OpenAI-protocol stub server, synthetic preference pairs, a tiny checkpoint."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

MODULES = [
    "parser",
    "cache",
    "router",
    "config",
    "loader",
    "scheduler",
    "tokenizer",
    "client",
    "server",
    "queue",
]
ACTIONS = ["fix the failing test in", "add logging to", "speed up", "document", "refactor"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_pairs(n: int, seed: int):
    """Chosen answers name the asked-about module and explain steps; rejected ones are vague or about another module."""
    from dspy_rl.judges.transformer import PreferencePair

    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        mod, act = rng.choice(MODULES), rng.choice(ACTIONS)
        other = rng.choice([m for m in MODULES if m != mod])
        q = f"How do I {act} the {mod} module?"
        chosen = (
            f"First open {mod}.py and run pytest -k {mod}.\n- {act} {mod} because the {mod} tests cover it.\n"
            f"- Then rerun the {mod} suite."
        )
        if rng.random() < 0.5:
            rejected = rng.choice(["no idea", "just try again later", "it works on my machine", "ok"])
        else:  # as long and structured as the chosen one, but about another module: length alone cannot win
            rejected = (
                f"First open {other}.py and run pytest -k {other}.\n- {act} {other} because the {other} tests "
                f"cover it.\n- Then rerun the {other} suite."
            )
        pairs.append(PreferencePair(q, chosen, rejected))
    return pairs


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny reward model trained on synthetic pairs (a few seconds on one CPU thread)."""
    from dspy_rl.judges.transformer import RewardModelConfig, TrainConfig, train_preference_model

    out = tmp_path_factory.mktemp("judge")
    path = train_preference_model(
        synthetic_pairs(256, seed=0),
        out,
        RewardModelConfig(
            d_model=32, nhead=4, num_layers=1, dim_feedforward=64, max_len=128, max_query_len=48
        ),
        TrainConfig(steps=60, batch_size=16, lr=3e-3, seed=0),
    )
    return path


class _StubState:
    def __init__(self) -> None:
        self.delay_s = 0.0
        self.reply = "Clear and correct.\nSCORE: 8"
        self.status = 200
        self.requests: list[dict] = []


@contextlib.contextmanager
def stub_server():
    """A chat-completions server on 127.0.0.1: yields ``(base_url, state)``; tune ``state.delay_s/reply/status``."""
    state = _StubState()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

        def do_POST(self):  # noqa: N802 (http.server API)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            state.requests.append(
                {"path": self.path, "body": body, "auth": self.headers.get("authorization")}
            )
            time.sleep(state.delay_s)
            if self.path != "/v1/chat/completions":
                self.send_response(404)
                self.end_headers()
                return
            payload = {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": state.reply},
                        "finish_reason": "stop",
                    }
                ],
            }
            data = json.dumps(payload).encode()
            self.send_response(state.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def openai_stub():
    """Function-scoped :func:`stub_server`."""
    with stub_server() as stub:
        yield stub


@pytest.fixture(scope="module")
def openai_stub_module():
    """Module-scoped :func:`stub_server` (for Serve apps deployed once per module)."""
    with stub_server() as stub:
        yield stub


@pytest.fixture(scope="session")
def make_pairs():
    """The :func:`synthetic_pairs` generator."""
    return synthetic_pairs


@pytest.fixture(scope="session")
def port_factory():
    """Returns a free 127.0.0.1 port each call."""
    return free_port
