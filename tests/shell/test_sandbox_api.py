"""The sandbox's Python API and `dspy-rl shell exec`: results, limits, and one-line refusals of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dspy_rl.shell.sandbox import ExecResult, Sandbox, SandboxLimits, run_batch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def ws(tmp_path: Path, sandbox_support: int) -> Path:
    (tmp_path / "f.txt").write_text("hello\n")
    return tmp_path


def test_run_returns_a_full_result(ws):
    with Sandbox(ws, env={"GREETING": "hi"}) as sb:
        r = sb.run("echo $GREETING; cat f.txt; echo oops >&2; exit 4")
        assert isinstance(r, ExecResult)
        assert (r.exit_code, r.stdout, r.stderr, r.truncated, r.timed_out, r.signal, r.reason) == (
            4,
            "hi\nhello\n",
            "oops\n",
            False,
            False,
            None,
            None,
        )
        assert r.wall_ms > 0 and not r.ok
        assert set(r.to_json()) >= {
            "exit_code",
            "stdout",
            "stderr",
            "truncated",
            "timed_out",
            "signal",
            "wall_ms",
        }
        assert sb.run(["cat"], stdin="piped").stdout == "piped"
        assert sb.run(["sleep", "5"], timeout_s=0.2).timed_out
        assert sb.landlock_abi >= 0 and Path(sb.workspace) == ws.resolve()
    assert sb.closed
    with pytest.raises(RuntimeError, match="closed"):
        sb.run("true")


def test_bad_input_is_refused_in_one_line(ws):
    with pytest.raises(ValueError, match="does not exist"):
        Sandbox(ws / "missing")
    with pytest.raises(ValueError, match="not a directory"):
        Sandbox(ws / "f.txt")
    with pytest.raises(ValueError, match="must not be /"):
        Sandbox("/")
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="mem_mb"):
        SandboxLimits(mem_mb=-1)
    with pytest.raises(ValueError, match="environment variable"):
        Sandbox(ws, env={"A=B": "x"})
    with Sandbox(ws) as sb:
        with pytest.raises(ValueError, match="non-empty list"):
            sb.run([])
        with pytest.raises(ValueError, match="NUL"):
            sb.run(["echo", "a\0b"])
        r = sb.run(["definitely-not-a-command"])
        assert r.exit_code == 127 and "command not found" in r.stderr
    with pytest.raises(ValueError, match="job 0"):
        run_batch([(ws / "missing", "true")])


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "dspy_rl", "shell", *args], capture_output=True, text=True, env=env
    )


def test_cli_exec_prints_one_json_object(ws):
    p = _cli("exec", "--workspace", str(ws), "--timeout", "5", "--", "sh", "-c", "cat f.txt; exit 3")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["exit_code"] == 3 and out["stdout"] == "hello\n" and out["timed_out"] is False
    assert set(out) >= {"exit_code", "stdout", "stderr", "truncated", "timed_out", "signal", "wall_ms"}
    p = _cli("exec", "--workspace", str(ws), "--timeout", "0.3", "--", "sleep", "10")
    assert json.loads(p.stdout)["timed_out"] is True
    for bad, msg in [
        (["exec", "--workspace", str(ws / "missing"), "--", "ls"], "does not exist"),
        (["exec", "--workspace", str(ws)], "no command given"),
        (["exec", "--", "ls"], "--workspace"),
        (["exec", "--workspace", str(ws), "--timeout", "-1", "--", "ls"], "timeout_s must be > 0"),
        (["nope"], "unknown subcommand"),
    ]:
        p = _cli(*bad)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, (bad, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
