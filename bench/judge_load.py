"""Open-loop load against the judge ensemble: adaptive policy vs Serve's default autoscaling vs fixed replicas.

One run, one local Ray + Serve instance, the same two-judge ensemble (the rubric judge, weight 1, plus a model
judge ``model``, weight 2) deployed four ways:

* ``adaptive``  our controller as the Serve autoscaling policy (model judge 1-4 replicas) **and** the
  ensemble's adaptive ConcurrencyLimiter in front of the model judge, which sheds it when its in-flight limit
  is reached (the rubric judge always answers, so a shed request gets a degraded answer, not an error);
* ``adaptive_noshed`` the same autoscaling policy without shedding (what scaling alone buys);
* ``default``   Serve's default autoscaling policy (1-4 replicas, target_ongoing_requests=2), no shedding;
* ``fixed``     one replica per judge, no shedding.

Workloads (``--workload``): ``llm-stub`` (default) is the LLM judge against a local OpenAI-compatible endpoint
that takes ``--service-ms`` per call, one call at a time per replica: an I/O-bound model judge (a remote or
GPU model) whose capacity grows with replicas even on a small CPU box. ``embedding`` is all-MiniLM-L6-v2 on
this machine's CPU (one torch thread per replica), which on a 2-core host cannot scale.

Capacity C is calibrated first on ``fixed``: unloaded latency from ``--unloaded-n`` (300) sequential requests, C from a closed
loop with 8 concurrent clients. Each variant then gets Poisson arrivals at 0.5x, 1x and 2x C, in that order on
the same deployment (open loop: arrivals do not wait for answers), ``--phase-s`` seconds each. Per phase:
p50/p99 latency, throughput, errors (non-200 or client timeout), the share of answers in which every judge
answered ("full"), and why the model judge was left out otherwise (``shed`` or ``late`` = past the deadline).

    python bench/judge_load.py [--workload llm-stub|embedding] [--phase-s 20] [--out bench/results/judge_load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dspy_rl.judges.config import JudgeSpec, ServeConfig  # noqa: E402

logger = logging.getLogger("judge_load")
WORDS = (
    "parser cache router config loader scheduler token client server queue test assert fix bug error retry "
    "timeout lock thread async await import module function class method return value list dict string"
).split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_items(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [
        {
            "query": f"How do I {text(8)}?",
            "response": f"{text(40)}.\n\n- {text(12)}\n- {text(12)}",
            "reference": text(30),
        }
        for _ in range(n)
    ]


VARIANTS = ("adaptive", "adaptive_noshed", "default", "fixed")
WORKLOADS = ("llm-stub", "embedding")


def serve_stub(port: int, service_s: float) -> None:
    """An OpenAI-compatible endpoint that takes ``service_s`` per call (emulates a remote/GPU model)."""
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> dict:
        await asyncio.sleep(service_s)
        content = "Looks right.\nSCORE: 7"
        return {
            "id": "stub",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
        }

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def config(
    variant: str, workload: str, port: int, deadline_s: float, stub_url: str | None, tolerance: float = 1.5
) -> ServeConfig:
    """The ensemble for ``workload``, deployed the ``variant`` way."""
    max_replicas = 1 if variant == "fixed" else 4
    if workload == "embedding":
        model = JudgeSpec(
            kind="embedding",
            weight=2.0,
            num_cpus=0.5,
            min_replicas=1,
            max_replicas=min(max_replicas, 2),
            max_ongoing_requests=32,
            options={"num_threads": 1},
        )
    else:
        # one in-flight call per replica: a replica stands for one accelerator serving one batch at a time
        model = JudgeSpec(
            kind="llm",
            weight=2.0,
            num_cpus=0,
            min_replicas=1,
            max_replicas=max_replicas,
            max_ongoing_requests=32,
            model_concurrency=1,
            options={"base_url": stub_url, "model": "stub", "timeout_s": 30.0},
        )
    judges = {
        "rubric": JudgeSpec(kind="rubric", weight=1.0, num_cpus=0, min_replicas=1, max_replicas=1),
        "model": model,
    }
    return ServeConfig(
        port=port,
        app_name=f"bench_{variant}",
        deadline_s=deadline_s,
        autoscaling={
            "adaptive": "adaptive",
            "adaptive_noshed": "adaptive",
            "default": "default",
            "fixed": "fixed",
        }[variant],
        shed=variant == "adaptive",
        upscale_delay_s=1.0,
        downscale_delay_s=10.0,
        look_back_period_s=2.0,
        metrics_interval_s=0.5,
        # one controller config for the Serve policy (per-replica concurrency) and the shedding limiters
        control={
            "mode": "gradient",
            "base_limit": 2,
            "min_limit": 1,
            "max_limit": 8,
            "latency_tolerance": tolerance,
            "queue_high_watermark": 2.0,
            "adaptation_interval": 1.0,
        },
        judges=judges,
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def one(client: httpx.AsyncClient, item: dict, n_judges: int, out: list) -> None:
    """One request; appends (latency, ok, full, why the model judge was left out or "")."""
    start = time.perf_counter()
    why = ""
    try:
        r = await client.post("/judge", json=item)
        ok = r.status_code == 200
        body = r.json() if ok else {}
        full = ok and len(body["answered"]) == n_judges
        why = body.get("left_out", {}).get("model", "").split(" ")[0]
    except httpx.HTTPError:
        ok, full = False, False
    out.append((time.perf_counter() - start, ok, full, why))


async def open_loop(
    base: str, rate: float, duration: float, items: list[dict], n_judges: int, seed: int
) -> dict:
    rng = random.Random(seed)
    results: list = []
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=30.0, limits=limits) as client:
        tasks = []
        t0 = time.perf_counter()
        t = 0.0
        i = 0
        while True:
            t += rng.expovariate(rate)
            if t >= duration:
                break
            delay = t0 + t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, items[i % len(items)], n_judges, results)))
            i += 1
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
    lat = [r[0] for r in results if r[1]]
    return {
        "offered_rps": rate,
        "sent": len(results),
        "throughput_rps": len(lat) / wall,
        "p50_ms": 1000 * pct(lat, 0.50),
        "p99_ms": 1000 * pct(lat, 0.99),
        "errors": sum(1 for r in results if not r[1]),
        "full_pct": 100.0 * sum(1 for r in results if r[2]) / max(1, len(results)),
        "shed_pct": 100.0 * sum(1 for r in results if r[3] == "shed") / max(1, len(results)),
        "late_pct": 100.0 * sum(1 for r in results if r[3] == "timeout") / max(1, len(results)),
        "p99_full_ms": 1000 * pct([r[0] for r in results if r[2]], 0.99),
    }


async def closed_loop(base: str, clients: int, duration: float, items: list[dict], n_judges: int) -> dict:
    results: list = []
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        stop = time.perf_counter() + duration

        async def worker(k: int) -> None:
            j = k
            while time.perf_counter() < stop:
                await one(client, items[j % len(items)], n_judges, results)
                j += clients

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    lat = [r[0] for r in results if r[1]]
    return {
        "throughput_rps": len(lat) / wall,
        "p50_ms": 1000 * pct(lat, 0.5),
        "p99_ms": 1000 * pct(lat, 0.99),
        "errors": sum(1 for r in results if not r[1]),
        "full_pct": 100.0 * sum(r[2] for r in results) / len(results),
    }


async def sequential(base: str, n: int, items: list[dict], n_judges: int) -> dict:
    results: list = []
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        for i in range(n):
            await one(client, items[i % len(items)], n_judges, results)
    lat = [r[0] for r in results if r[1]]
    return {"p50_ms": 1000 * pct(lat, 0.5), "p99_ms": 1000 * pct(lat, 0.99), "errors": n - len(lat)}


def replicas(app_name: str) -> dict[str, int]:
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return {}
    return {d: int(s.replica_states.get("RUNNING", 0)) for d, s in app.deployments.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per load level")
    ap.add_argument("--loads", default="0.5,1,2", help="load levels as multiples of the calibrated capacity")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="llm-stub",
        help="llm-stub: LLM judge against a local endpoint with --service-ms per call (I/O-bound, like a "
        "remote or GPU model); embedding: all-MiniLM-L6-v2 on this CPU",
    )
    ap.add_argument(
        "--unloaded-n", type=int, default=300, help="sequential requests for the unloaded p50/p99 baseline"
    )
    ap.add_argument("--service-ms", type=float, default=100.0, help="llm-stub: endpoint time per call")
    ap.add_argument(
        "--tolerance",
        type=float,
        default=1.1,
        help="controller latency_tolerance (adaptive variants): latency allowed above the no-load latency",
    )
    ap.add_argument("--serve-stub", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--deadline-s", type=float, default=2.0, help="ensemble per-request deadline")
    ap.add_argument("--port", type=int, default=8471, help="HTTP port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "judge_load.json"))
    args = ap.parse_args(argv)
    if args.serve_stub:
        serve_stub(args.serve_stub, args.service_ms / 1000.0)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("ray", "ray.serve", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    loads = [float(x) for x in args.loads.split(",")]
    variants = args.variants.split(",")
    if not variants or any(v not in VARIANTS for v in variants):
        ap.error(f"--variants: comma-separated, from {', '.join(VARIANTS)}")
    if not loads or any(x <= 0 for x in loads) or args.phase_s <= 0:
        ap.error("--loads must be positive multiples of capacity and --phase-s > 0")
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"

    import ray
    from ray import serve

    from dspy_rl.judges.app import deploy
    from dspy_rl.utils.ray_local import init_ray

    stub, stub_url = None, None
    if args.workload == "llm-stub":
        stub_port = free_port()
        stub = subprocess.Popen(
            [sys.executable, __file__, "--serve-stub", str(stub_port), "--service-ms", str(args.service_ms)]
        )
        stub_url = f"http://127.0.0.1:{stub_port}/v1"
        for _ in range(100):
            try:
                httpx.post(f"{stub_url}/chat/completions", json={"model": "x", "messages": []}, timeout=2.0)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
    init_ray(num_cpus=4, log_to_driver=False)  # local, listening on 127.0.0.1 only
    items = make_items(64)
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()},
        "phase_s": args.phase_s,
        "deadline_s": args.deadline_s,
        "workload": args.workload,
        "service_ms": args.service_ms if args.workload == "llm-stub" else None,
        "tolerance": args.tolerance,
        "variants": {},
    }
    try:
        # calibration on the fixed deployment
        deploy(config("fixed", args.workload, port, args.deadline_s, stub_url, args.tolerance))
        asyncio.run(sequential(base, 10, items, 2))  # warm-up
        unloaded = asyncio.run(sequential(base, args.unloaded_n, items, 2))
        cap = asyncio.run(closed_loop(base, 8, 8.0, items, 2))
        capacity = cap["throughput_rps"]
        report["calibration"] = {"unloaded": unloaded, "closed_loop_8": cap, "capacity_rps": capacity}
        logger.info(
            "unloaded p50 %.1f ms p99 %.1f ms; capacity %.1f req/s",
            unloaded["p50_ms"],
            unloaded["p99_ms"],
            capacity,
        )
        serve.delete("bench_fixed")
        for variant in variants:
            cfg = config(variant, args.workload, port, args.deadline_s, stub_url, args.tolerance)
            deploy(cfg)
            asyncio.run(sequential(base, 10, items, 2))
            rows = []
            for k, load in enumerate(loads):
                row = asyncio.run(open_loop(base, load * capacity, args.phase_s, items, 2, seed=k))
                row.update(load=load, replicas=replicas(cfg.app_name))
                rows.append(row)
                logger.info(
                    "%-15s %.1fx: %s",
                    variant,
                    load,
                    {k2: (round(v, 1) if isinstance(v, float) else v) for k2, v in row.items()},
                )
            report["variants"][variant] = rows
            serve.delete(cfg.app_name)
    finally:
        serve.shutdown()
        ray.shutdown()
        if stub is not None:
            stub.terminate()
            stub.wait(timeout=10)

    base_p99 = report["calibration"]["unloaded"]["p99_ms"]
    print(
        f"\nworkload {args.workload}"
        + (f" ({args.service_ms:g} ms per model call)" if args.workload == "llm-stub" else "")
        + f"; load average at start {report['machine']['loadavg_start'][0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"unloaded p50 {report['calibration']['unloaded']['p50_ms']:.1f} ms, p99 {base_p99:.1f} ms; "
        f"capacity C = {capacity:.1f} req/s (fixed, 8 closed-loop clients); {args.phase_s:g} s per level"
    )
    header = (
        f"{'variant':<16}{'load':>5}{'offered':>9}{'thru/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'p99/unl':>8}"
        f"{'errors':>7}{'full%':>7}{'shed%':>7}{'late%':>7}  replicas"
    )
    print(header)
    print("-" * len(header))
    for variant, rows in report["variants"].items():
        for r in rows:
            print(
                f"{variant:<16}{r['load']:>4.1f}x{r['offered_rps']:>9.1f}{r['throughput_rps']:>8.1f}"
                f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['p99_ms'] / base_p99:>8.2f}{r['errors']:>7}"
                f"{r['full_pct']:>7.1f}{r['shed_pct']:>7.1f}{r['late_pct']:>7.1f}  {r['replicas']}"
            )
    if "adaptive" in report["variants"] and max(loads) >= 2:
        top = [r for r in report["variants"]["adaptive"] if r["load"] == max(loads)][0]
        ratio = top["p99_ms"] / base_p99
        report["adaptive_overload"] = {
            "p99_over_unloaded": ratio,
            "errors": top["errors"],
            "target_met": ratio <= 2.0 and top["errors"] == 0,
        }
        print(
            f"\nadaptive at {max(loads):g}x: p99 = {ratio:.2f} x unloaded p99, {top['errors']} errors "
            f"(target: <= 2x, 0 errors: {'met' if report['adaptive_overload']['target_met'] else 'NOT met'})"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
