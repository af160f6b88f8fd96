"""ShellEnv episode reset: a fresh copy of a real workspace (project + .git) and a fresh sandbox on it.

Peers in the same run, per shipped workspace: ``Pack.write`` of the in-memory template (what ShellEnv does) vs
``shutil.copytree`` of the same tree on disk; plus removing the old copy, starting the episode's sandbox, and one
whole ``ShellVecEnv`` reset. Prints p50/p90 in ms and the copy speed-up; writes bench/results/shell_reset.json.

    python bench/shell_reset.py [--repeats 50] [--base /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from dspy_rl.envs.shellenv.env import ShellVecEnv
from dspy_rl.envs.shellenv.workspaces import (
    EpisodeDirs,
    available_workspaces,
    build_template,
    load_workspace,
)
from dspy_rl.shell.sandbox import Sandbox


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return 1000 * xs[min(len(xs) - 1, int(q * len(xs)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--base", default=None, help="where the copies go (default: /dev/shm when writable)")
    args = ap.parse_args()
    rows = []
    for name in available_workspaces():
        pack = build_template(load_workspace(name))
        dirs = EpisodeDirs(1, args.base)
        src = Path(tempfile.mkdtemp(dir=dirs.root))
        pack.write(src / "t")
        write, copytree, remove, start = [], [], [], []
        box = None
        for k in range(args.repeats):
            dest = dirs.root / f"c{k}"
            t = time.perf_counter()
            shutil.copytree(src / "t", dest)
            copytree.append(time.perf_counter() - t)
            shutil.rmtree(dest)
            t = time.perf_counter()
            pack.write(dest)
            write.append(time.perf_counter() - t)
            t = time.perf_counter()
            shutil.rmtree(dest)
            remove.append(time.perf_counter() - t)
            path = dirs.reset(0, pack)
            if box is not None:
                box.close()
            t = time.perf_counter()
            box = Sandbox(path)
            start.append(time.perf_counter() - t)
        if box is not None:
            box.close()
        dirs.close()
        rows.append(
            {
                "workspace": name,
                "files": len(pack.files),
                "pack_write_p50_ms": _pct(write, 0.5),
                "copytree_p50_ms": _pct(copytree, 0.5),
                "remove_p50_ms": _pct(remove, 0.5),
                "sandbox_start_p50_ms": _pct(start, 0.5),
                "sandbox_start_p90_ms": _pct(start, 0.9),
            }
        )
    env = ShellVecEnv(1, "shell", workdir=args.base)
    full = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        env.reset()
        full.append(time.perf_counter() - t)
    env.close()
    print(
        f"{'workspace':<10} {'files':>5} {'write':>7} {'copytree':>8} {'x':>5} {'remove':>7} {'sandbox':>8}  (p50 ms)"
    )
    for r in rows:
        ratio = r["copytree_p50_ms"] / max(r["pack_write_p50_ms"], 1e-9)
        print(
            f"{r['workspace']:<10} {r['files']:>5} {r['pack_write_p50_ms']:>7.2f} {r['copytree_p50_ms']:>8.2f} "
            f"{ratio:>5.1f} {r['remove_p50_ms']:>7.2f} {r['sandbox_start_p50_ms']:>8.2f}"
        )
    summary = {
        "env_reset_p50_ms": _pct(full, 0.5),
        "env_reset_p90_ms": _pct(full, 0.9),
        "workspace_copy_p50_ms_median": statistics.median(r["pack_write_p50_ms"] for r in rows),
    }
    print(
        f"ShellVecEnv(1).reset() (remove + copy + new sandbox): p50 {summary['env_reset_p50_ms']:.2f} ms, "
        f"p90 {summary['env_reset_p90_ms']:.2f} ms"
    )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "shell_reset.json").write_text(json.dumps({"rows": rows, **summary}, indent=1))


if __name__ == "__main__":
    main()
