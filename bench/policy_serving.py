"""Policy serving throughput and latency: `serve policy` with dynamic batching vs without, in one run.

Modes (each for ``--seconds`` at ``--concurrency`` callers in flight, after a warm-up):

* ``handle-batched``: one state per call through the deployment handle; Serve's ``@serve.batch`` merges
  concurrent calls into one forward pass;
* ``handle-unbatched``: the same calls, each with its own forward pass (``decide_unbatched``);
* ``http-batched``: one state per ``POST /v1/policy/decide`` over HTTP (batched server side);
* ``http-client-batches``: ``--client-batch`` states per HTTP request (one forward pass per request);
* ``engine-direct``: the forward pass alone on ``--client-batch`` states, in the driver (no Serve): the ceiling.

Prints decisions/s and p50/p99 latency per call (a call = one state, or one client batch), the batched/unbatched
ratio, and writes JSON to ``bench/results/policy_serving.json``. The policy is a `dspy-rl train` run directory
(``--checkpoint``), or, without one, a randomly initialized policy of the default suite written in a temp dir
(serving cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _random_run(directory: Path) -> Path:

    from dspy_rl.envs.suite import load_suite
    from dspy_rl.models.policy import MultiPolicy
    from dspy_rl.utils.checkpoint import FORMAT_VERSION, save_checkpoint

    s = load_suite("default")
    policy = MultiPolicy(s.obs_dim, len(s.tools), s.num_args)
    save_checkpoint(
        directory,
        1,
        {
            "format_version": FORMAT_VERSION,
            "config": {"env": {"suite": "default"}},
            "model_spec": policy.spec(),
            "learner": {"model": policy.state_dict()},
        },
    )
    return directory


def _states(tools: list[str], n: int) -> list[dict]:
    out = []
    for i in range(n):
        hist = [
            {"tool": tools[(i + j) % len(tools)], "result": ("success", "failure", "empty")[j % 3]}
            for j in range(i % 5)
        ]
        out.append({"history": hist})
    return out


def _engine_ceiling(run: str, batch: int, seconds: float) -> dict:
    """The policy forward pass alone (no Serve, no HTTP), ``batch`` states a call: the serving ceiling."""
    import torch

    from dspy_rl.serving.policy_engine import PolicyEngine

    torch.set_num_threads(1)
    engine = PolicyEngine(run)
    states = _states(engine.tool_names, batch)
    lat, n, stop = [], 0, time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < stop:
        t = time.perf_counter()
        engine.decide(states)
        lat.append((time.perf_counter() - t) * 1000.0)
        n += 1
    wall = time.perf_counter() - t0
    r = {
        "decisions_per_s": n * batch / wall,
        "calls": n,
        "p50_ms": _pct(lat, 0.5),
        "p99_ms": _pct(lat, 0.99),
        "mean_ms": statistics.fmean(lat),
    }
    print(
        f"{'engine-direct':>20}: {r['decisions_per_s']:9.0f} decisions/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms (batches of {batch}, no Serve)",
        flush=True,
    )
    return r


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def _drive(call, states: list[dict], concurrency: int, seconds: float, per_call: int) -> dict:
    lat: list[float] = []
    stop = time.perf_counter() + seconds
    count = 0

    async def worker(k: int) -> None:
        nonlocal count
        i = k
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            await call(states[i % len(states)])
            lat.append((time.perf_counter() - t0) * 1000.0)
            count += 1
            i += concurrency

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall = time.perf_counter() - t0
    return {
        "decisions_per_s": count * per_call / wall,
        "calls": count,
        "p50_ms": _pct(lat, 0.50),
        "p99_ms": _pct(lat, 0.99),
        "mean_ms": statistics.fmean(lat) if lat else float("nan"),
    }


async def _run(args: argparse.Namespace, handle, base: str, tools: list[str]) -> dict:
    import httpx

    states = _states(tools, 512)
    batches = [states[i : i + args.client_batch] for i in range(0, len(states), args.client_batch)]
    results = {}
    async with httpx.AsyncClient(
        base_url=base, timeout=60, limits=httpx.Limits(max_connections=args.concurrency)
    ) as http:

        async def h_batched(s):
            return await handle.decide.remote(s)

        async def h_unbatched(s):
            return await handle.decide_unbatched.remote(s)

        async def http_one(s):
            r = await http.post("/v1/policy/decide", json={"state": s})
            r.raise_for_status()

        async def http_many(b):
            r = await http.post("/v1/policy/decide", json={"states": b})
            r.raise_for_status()

        modes = [
            ("handle-batched", h_batched, states, 1),
            ("handle-unbatched", h_unbatched, states, 1),
            ("http-batched", http_one, states, 1),
            ("http-client-batches", http_many, batches, args.client_batch),
        ]
        for name, fn, data, per in modes:
            await _drive(fn, data, args.concurrency, min(2.0, args.seconds), per)  # warm-up
            results[name] = await _drive(fn, data, args.concurrency, args.seconds, per)
            r = results[name]
            print(
                f"{name:>20}: {r['decisions_per_s']:9.0f} decisions/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms",
                flush=True,
            )
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a `dspy-rl train` run dir (default: a random default-suite policy)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--client-batch", type=int, default=64)
    ap.add_argument("--max-batch-size", type=int, default=256)
    ap.add_argument("--batch-wait-ms", type=float, default=2.0)
    ap.add_argument("--out", default="bench/results/policy_serving.json")
    args = ap.parse_args()

    import ray
    from ray import serve

    from dspy_rl.serving.policy_app import deploy
    from dspy_rl.serving.policy_config import PolicyServeConfig

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = tempfile.TemporaryDirectory()
    run = args.checkpoint or str(_random_run(Path(tmp.name) / "run"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from dspy_rl.utils.ray_local import init_ray

    init_ray(num_cpus=2, log_to_driver=False)  # local, listening on 127.0.0.1 only
    try:
        cfg = PolicyServeConfig(
            checkpoint=run,
            port=port,
            max_batch_size=args.max_batch_size,
            batch_wait_timeout_s=args.batch_wait_ms / 1000.0,
            num_cpus=1,
            max_ongoing_requests=4 * args.concurrency,
            max_states=max(1024, args.client_batch),
        )
        results_engine = _engine_ceiling(run, args.client_batch, args.seconds)
        handle = deploy(cfg)
        tools = handle.decide.remote({"history": []}).result()["tools"]
        tools = [t["tool"] for t in tools]
        results = {
            "engine-direct": results_engine,
            **asyncio.run(_run(args, handle, f"http://127.0.0.1:{port}", tools)),
        }
    finally:
        serve.shutdown()
        ray.shutdown()
        tmp.cleanup()
    ratio = results["handle-batched"]["decisions_per_s"] / results["handle-unbatched"]["decisions_per_s"]
    print(f"batched / unbatched (handle, one state per call): {ratio:.2f}x")
    load = os.getloadavg()
    out = {
        "args": vars(args),
        "results": results,
        "batched_over_unbatched": ratio,
        "loadavg": load,
        "time": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"load average {load[0]:.1f}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
