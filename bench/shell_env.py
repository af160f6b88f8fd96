"""Sandbox cost: our namespace sandbox (dspy_rl.shell.sandbox) vs a plain subprocess vs Debian's bubblewrap.

Measured in one run, trials of the contenders interleaved round-robin so machine load hits them alike:
  plain         subprocess.run(cmd, cwd=workspace): no isolation at all (the baseline)
  episode       Sandbox.run(cmd) in an episode's sandbox that stays up across commands
  fresh         Sandbox(workspace) + run(cmd) + close(): new namespaces, root, init for one command
  bwrap         `bwrap --unshare-all ... cmd` (bubblewrap 0.8, same mounts as ours): new namespaces per command
Cheap tool calls/s across 1..N workers: run_batch over episode sandboxes (one per worker) vs a thread pool of
plain subprocesses. Resets/s: shellenv's EpisodeDirs reset of a real workspace (a fresh copy) plus starting the
episode's sandbox on it.

    python bench/shell_env.py                 # ~1-2 min
    python bench/shell_env.py --trials 300 --workers 1,2,4,8
    python bench/shell_env.py --host-mb 2000  # the host holds 2 GB (weights): fresh sandboxes must not copy it
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from dspy_rl.shell.sandbox import Sandbox, SandboxLimits, check_support, run_batch

CMDS: dict[str, list[str]] = {
    "true": ["true"],
    "ls": ["ls", "-la"],
    "cat": ["cat", "src/pkg/mod_3.py"],
    "grep": ["grep", "-rn", "def f", "src"],
}


def make_workspace(root: Path, files: int = 60) -> Path:
    """A small Python-package-shaped workspace: `files` modules, a README, a Makefile."""
    ws = root / "ws"
    (ws / "src" / "pkg").mkdir(parents=True)
    for i in range(files):
        (ws / "src" / "pkg" / f"mod_{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n" * 5)
    (ws / "README.md").write_text("# demo\n")
    (ws / "Makefile").write_text("test:\n\tpython3 -c 'print(1)'\n")
    return ws


def bwrap_argv(ws: Path, cmd: list[str]) -> list[str]:
    argv = [
        "bwrap",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    for name in ("bin", "sbin", "lib", "lib64"):
        p = Path("/") / name
        if p.is_symlink():
            argv += ["--symlink", os.readlink(p), f"/{name}"]
        elif p.exists():
            argv += ["--ro-bind", str(p), f"/{name}"]
    for f in ("ld.so.cache", "alternatives"):
        if (Path("/etc") / f).exists():
            argv += ["--ro-bind", f"/etc/{f}", f"/etc/{f}"]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(ws),
        "/workspace",
        "--chdir",
        "/workspace",
        *cmd,
    ]
    return argv


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def latency(ws: Path, trials: int, use_bwrap: bool) -> dict:
    limits = SandboxLimits(timeout_s=10.0)
    episode = Sandbox(ws, limits)
    out: dict[str, dict] = {}
    try:
        for name, cmd in CMDS.items():
            contenders: dict[str, Callable[[], None]] = {
                "plain": lambda cmd=cmd: subprocess.run(cmd, cwd=ws, capture_output=True, check=True),
                "episode": lambda cmd=cmd: episode.run(cmd),
            }
            if name in ("true", "cat"):

                def fresh(cmd=cmd) -> None:
                    with Sandbox(ws, limits) as sb:
                        sb.run(cmd)

                contenders["fresh"] = fresh
                if use_bwrap:
                    contenders["bwrap"] = lambda cmd=cmd: subprocess.run(
                        bwrap_argv(ws, cmd), capture_output=True, check=True
                    )
            times: dict[str, list[float]] = {k: [] for k in contenders}
            for fn in contenders.values():  # warm-up
                fn()
            for _ in range(trials):
                for k, fn in contenders.items():
                    t0 = time.perf_counter()
                    fn()
                    times[k].append((time.perf_counter() - t0) * 1000)
            out[name] = {
                k: {"p50_ms": statistics.median(v), "p90_ms": pct(v, 0.9), "n": len(v)}
                for k, v in times.items()
            }
    finally:
        episode.close()
    return out


def _cpu_s() -> float:
    """CPU seconds (user + system) of this process plus every descendant it has reaped."""
    me, kids = os.times(), os.times()
    return me.user + me.system + kids.children_user + kids.children_system


def cpu_per_call(ws: Path, n: int, use_bwrap: bool) -> dict:
    """CPU ms per command, host process + sandbox processes (all reaped by the end of each measurement), run
    back to back. Unlike wall-clock latency this hardly depends on how loaded the machine is; it bounds the
    calls/s two cores can sustain. Kernel work done in worker threads (e.g. freeing a network namespace) is
    not charged to anyone and so not included."""
    cmd = CMDS["cat"]
    out: dict[str, float] = {}

    def measure(name: str, fn: Callable[[], None], setup=None, teardown=None) -> None:
        ctx = setup() if setup else None
        fn_ = (lambda: fn(ctx)) if setup else fn
        fn_()
        c0 = _cpu_s()
        for _ in range(n):
            fn_()
        if teardown:
            teardown(ctx)
        out[name] = (_cpu_s() - c0) * 1000 / n

    measure("plain", lambda: subprocess.run(cmd, cwd=ws, capture_output=True, check=True))
    measure("episode", lambda sb: sb.run(cmd), setup=lambda: Sandbox(ws), teardown=lambda sb: sb.close())

    def fresh() -> None:
        with Sandbox(ws) as sb:
            sb.run(cmd)

    measure("fresh", fresh)
    if use_bwrap:
        measure("bwrap", lambda: subprocess.run(bwrap_argv(ws, cmd), capture_output=True, check=True))
    return out


def spawn_only(ws: Path, trials: int) -> dict:
    """Sandbox start and close alone (no command)."""
    starts, closes = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        sb = Sandbox(ws)
        t1 = time.perf_counter()
        sb.close()
        t2 = time.perf_counter()
        starts.append((t1 - t0) * 1000)
        closes.append((t2 - t1) * 1000)
    return {"start_p50_ms": statistics.median(starts), "close_p50_ms": statistics.median(closes)}


def throughput(ws_root: Path, workers_list: list[int], seconds: float) -> dict:
    out = {}
    cmds = [CMDS["ls"], CMDS["cat"], CMDS["grep"]]
    for w in workers_list:
        boxes = []
        for i in range(w):
            d = ws_root / f"tp_{w}_{i}"
            shutil.copytree(ws_root / "ws", d)
            boxes.append(Sandbox(d))
        try:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                jobs = [(boxes[j % w], cmds[j % len(cmds)]) for j in range(64 * w)]
                res = run_batch(jobs, workers=w)
                assert all(r.exit_code == 0 for r in res), [r for r in res if r.exit_code != 0][:1]
                n += len(jobs)
            sandbox_rate = n / (time.perf_counter() - t0)
        finally:
            for b in boxes:
                b.close()
        with cf.ThreadPoolExecutor(w) as pool:
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                jobs = [cmds[j % len(cmds)] for j in range(64 * w)]
                list(pool.map(lambda c: subprocess.run(c, cwd=ws_root / "ws", capture_output=True), jobs))
                n += len(jobs)
            plain_rate = n / (time.perf_counter() - t0)
        out[w] = {
            "sandbox_calls_per_s": sandbox_rate,
            "plain_calls_per_s": plain_rate,
            "ratio": sandbox_rate / plain_rate,
        }
    return out


def resets(ws_root: Path, trials: int) -> dict:
    """Episode resets: shellenv's fresh workspace copy (EpisodeDirs.reset of a real project's template) plus
    starting the episode's sandbox on it (and closing the old one)."""
    from dspy_rl.envs.shellenv import workspaces as shell_ws

    name = shell_ws.available_workspaces()[0]
    pack = shell_ws.build_template(shell_ws.load_workspace(name))
    dirs = shell_ws.EpisodeDirs(1)
    method = f"shellenv EpisodeDirs.reset of workspace {name!r}"

    def copy(i: int) -> Path:
        return dirs.reset(0, pack)

    cleanup = dirs.close
    copy_ms, with_sandbox_ms = [], []
    try:
        nfiles = sum(1 for p in copy(0).rglob("*") if p.is_file())
        for i in range(trials):
            t0 = time.perf_counter()
            dst = copy(i)
            t1 = time.perf_counter()
            sb = Sandbox(dst)
            t2 = time.perf_counter()
            sb.close()
            copy_ms.append((t1 - t0) * 1000)
            with_sandbox_ms.append((t2 - t0) * 1000)
    finally:
        cleanup()
    return {
        "files": nfiles,
        "method": method,
        "copy_p50_ms": statistics.median(copy_ms),
        "copy_resets_per_s": 1000 / statistics.mean(copy_ms),
        "copy_plus_sandbox_p50_ms": statistics.median(with_sandbox_ms),
        "copy_plus_sandbox_resets_per_s": 1000 / statistics.mean(with_sandbox_ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100, help="timed calls per contender and command")
    ap.add_argument("--workers", default="1,2,4", help="worker counts for the throughput test")
    ap.add_argument("--seconds", type=float, default=3.0, help="duration of each throughput measurement")
    ap.add_argument("--no-bwrap", action="store_true", help="skip bubblewrap even if installed")
    ap.add_argument("--out", default="bench/results/shell_env.json")
    ap.add_argument(
        "--host-mb",
        type=int,
        default=0,
        help="first grow this process by this many MiB of touched memory (a training host holding weights)",
    )
    args = ap.parse_args()
    if args.host_mb < 0:
        raise SystemExit("--host-mb must be >= 0 (MiB of host memory to hold during the bench)")
    ballast = bytearray(args.host_mb << 20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    abi = check_support()
    use_bwrap = not args.no_bwrap and shutil.which("bwrap") is not None
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="shell-bench-") as tmp:
        root = Path(tmp)
        ws = make_workspace(root)
        lat = latency(ws, args.trials, use_bwrap)
        spawn = spawn_only(ws, max(20, args.trials // 2))
        cpu = cpu_per_call(ws, max(50, args.trials), use_bwrap)
        tp = throughput(root, [int(w) for w in args.workers.split(",")], args.seconds)
        rs = resets(root, max(20, args.trials // 2))
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, kernel {platform.release()}",
        "loadavg_start": load,
        "loadavg_end": os.getloadavg(),
        "landlock_abi": abi,
        "host_mb": args.host_mb,
        "bwrap": subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
        if use_bwrap
        else None,
        "latency": lat,
        "spawn": spawn,
        "cpu_ms_per_call": cpu,
        "throughput": tp,
        "resets": rs,
    }
    print(
        f"load average at start {load[0]:.1f}, end {result['loadavg_end'][0]:.1f}; Landlock ABI {abi}; "
        f"host grown by {args.host_mb} MiB"
    )
    print("\nper-command latency, ms (p50 / p90):")
    for name, row in lat.items():
        cells = "  ".join(f"{k} {v['p50_ms']:.2f}/{v['p90_ms']:.2f}" for k, v in row.items())
        over = row["episode"]["p50_ms"] - row["plain"]["p50_ms"]
        extra = ""
        if "bwrap" in row:
            extra = f"; fresh/bwrap p50 = {row['fresh']['p50_ms'] / row['bwrap']['p50_ms']:.2f}x"
        print(f"  {name:<5} {cells}   episode - plain p50 = {over:+.2f} ms{extra}")
    print(f"\nsandbox start alone p50 {spawn['start_p50_ms']:.2f} ms, close {spawn['close_p50_ms']:.2f} ms")
    cells = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items())
    print(
        f"CPU ms per `cat` call (host + sandbox processes): {cells}; episode - plain = "
        f"{cpu['episode'] - cpu['plain']:+.2f} ms; 2 cores sustain ~{2000 / cpu['episode']:.0f} episode calls/s"
    )
    print("\ncheap tool calls/s (ls/cat/grep) across workers:")
    for w, row in tp.items():
        print(
            f"  {w} workers: sandbox {row['sandbox_calls_per_s']:.0f}/s, plain subprocess "
            f"{row['plain_calls_per_s']:.0f}/s, ratio {row['ratio']:.2f}"
        )
    print(
        f"\nresets ({rs['files']} files, {rs['method']}): copy p50 {rs['copy_p50_ms']:.2f} ms "
        f"({rs['copy_resets_per_s']:.0f}/s); copy + sandbox start p50 {rs['copy_plus_sandbox_p50_ms']:.2f} ms "
        f"({rs['copy_plus_sandbox_resets_per_s']:.0f}/s)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
