"""SIGTERM to a server command leaves no process of its Ray session behind (process table checked with psutil)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_procs(session_dirs: set[str]) -> list[psutil.Process]:
    """Every live process whose command line names one of these Ray session directories."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.info["status"] != psutil.STATUS_ZOMBIE and any(d in cmd for d in session_dirs):
            found.append(proc)
    return found


def test_sigterm_to_serve_judges_leaves_no_ray_process(tmp_path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    server = subprocess.Popen(
        [sys.executable, "-m", "dspy_rl", "serve", "judges", f"port={port}", "judges=rubric_only"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    tree: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, f"serve judges exited early: {server.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "serve judges did not answer /healthz"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        for proc in psutil.Process(server.pid).children(recursive=True):
            tree[proc.pid] = proc
        names = {p.name() for p in tree.values()}
        assert any("raylet" in n for n in names), names  # the Ray session is this command's own
        sessions = {
            arg.split("=", 1)[1]
            for p in tree.values()
            for arg in p.cmdline()
            if arg.startswith(("--session-dir=", "--session_dir="))
        }
        assert sessions, "no Ray session directory found in the server's process tree"
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
        deadline = time.monotonic() + 30  # processes exit asynchronously after the command returns
        while True:
            alive = [p for p in tree.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
            leftovers = {p.pid: " ".join(p.cmdline())[:160] for p in [*alive, *_session_procs(sessions)]}
            if not leftovers or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not leftovers, f"processes of the server's Ray session outlived it: {leftovers}"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        for proc in [*tree.values()]:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
