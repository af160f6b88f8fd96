"""A broker that is down at start: one line with the retry schedule, then one line saying what to do."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dspy_rl.stream.broker import RETRY_SCHEDULE_S, BrokerUnavailable, wait_for_broker

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_wait_follows_the_retry_schedule_then_gives_up(caplog):
    port = _closed_port()
    slept: list[float] = []
    with pytest.raises(BrokerUnavailable, match=r"unreachable for 20s .*scripts/kafka.sh start"):
        wait_for_broker(f"127.0.0.1:{port}", 20, sleep=slept.append)
    assert slept == [*RETRY_SCHEDULE_S[:4], 5.0]  # the schedule, the last wait cut to the 20 s budget
    assert "retrying every 1s, 2s, 4s" in caplog.text


def test_wait_returns_once_the_broker_listens():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_broker(f"127.0.0.1:{server.getsockname()[1]}", 5, sleep=lambda s: None)
    with pytest.raises(BrokerUnavailable, match="not host:port"):
        wait_for_broker("no-port-here", 1)


@pytest.mark.parametrize("sub", ["ingest", "produce"])
def test_cli_with_the_broker_down_prints_one_line(tmp_path: Path, sub: str):
    port = _closed_port()
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_rl", "stream", sub, "stream=kafka", f"stream.bootstrap_servers=127.0.0.1:{port}",
         f"store={tmp_path / 't.db'}", "ingest.broker_wait_s=1.5"],
        capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dspy-rl stream {sub}: Kafka broker 127.0.0.1:{port} unreachable for 1.5s")
    assert "retrying every 1s, 2s" in proc.stderr
