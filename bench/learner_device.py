"""PPO learner update time per iteration on CPU vs CUDA (fp32 and bf16 autocast), on real ToolEnv batches.

The batch is one rollout of the default settings (`conf/env/default.yaml` x `conf/algo/ppo.yaml`: 512 envs x 16
steps = 8192 samples, hidden 64, 1 epoch in minibatches of 4096, lr 1e-2) sampled by an untrained policy; every
configuration starts from the same weights and times ``PPOLearner.update`` (host-to-device copy of the batch,
the minibatch loop, the optimizer steps and the metrics' host sync) over ``--iters`` updates after ``--warmup``.
``--scale`` adds rows for a bigger learner (wider networks, more epochs and envs) to show where a GPU starts to pay.

    python bench/learner_device.py [--iters 50] [--warmup 5] [--cpu-threads 1,16] [--scale [--scale-iters 5]] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

from dspy_rl.learners.ppo import PPOHyper, PPOLearner
from dspy_rl.models.policy import MultiPolicy, state_to_numpy
from dspy_rl.runners.env_runner import EnvRunner, RolloutSpec


def make_batch(num_envs: int, rollout_len: int, hidden: int, seed: int = 0) -> tuple[dict[str, Any], dict]:
    from dspy_rl.envs import rust_available

    backend = "rust" if rust_available() else "python"
    runner = EnvRunner(
        {"num_envs": num_envs, "suite": "default", "backend": backend},
        RolloutSpec(rollout_len, 0.99, 0.95, hidden),
        seed,
        torch_threads=torch.get_num_threads(),
    )
    info = runner.env_info()
    spec = {k: info[k] for k in ("obs_dim", "num_tools", "num_args")} | {"hidden": hidden}
    torch.manual_seed(seed)
    return runner.sample(state_to_numpy(MultiPolicy(**spec)), rollout_len), spec


def time_updates(
    batch: dict[str, Any],
    spec: dict,
    hp: PPOHyper,
    device: str,
    amp: bool,
    threads: int,
    iters: int,
    warmup: int,
) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    learner = PPOLearner(MultiPolicy(**spec), hp, torch.device(device), seed=0, mixed_precision=amp)
    times = []
    for i in range(warmup + iters):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        metrics = learner.update(batch)  # ends with a host sync (the metrics' .tolist())
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {
        "device": device,
        "amp_bf16": amp,
        "threads": threads,
        "median_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * statistics.fmean(times),
        "min_ms": 1000 * min(times),
        "samples_per_s": batch["obs"].shape[0] / statistics.median(times),
        "final_loss": metrics["loss"],
    }


def run_setting(
    name: str, num_envs: int, rollout_len: int, hidden: int, hp: PPOHyper, args: argparse.Namespace
):
    batch, spec = make_batch(num_envs, rollout_len, hidden)
    n = batch["obs"].shape[0]
    print(
        f"\n[{name}] batch {num_envs} envs x {rollout_len} steps = {n} samples, hidden {hidden}, "
        f"epochs {hp.epochs}, minibatch {hp.minibatch_size}, lr {hp.lr}"
    )
    rows = []
    configs = [("cpu", False, t) for t in args.cpu_threads]
    if torch.cuda.is_available():
        configs += [("cuda", False, 1), ("cuda", True, 1)]
    for device, amp, threads in configs:
        r = time_updates(batch, spec, hp, device, amp, threads, args.iters, args.warmup)
        r["setting"] = name
        rows.append(r)
        label = f"{device}{' bf16' if amp else ' fp32'}{f' {threads} thr' if device == 'cpu' else ''}"
        print(
            f"  {label:<18} median {r['median_ms']:8.2f} ms/update  (mean {r['mean_ms']:.2f}, min "
            f"{r['min_ms']:.2f})  {r['samples_per_s']:>12,.0f} samples/s"
        )
    base = rows[0]
    for r in rows[1:]:
        print(
            f"  speedup of {r['device']}{' bf16' if r['amp_bf16'] else ''}"
            f"{' ' + str(r['threads']) + ' thr' if r['device'] == 'cpu' else ''} over cpu "
            f"{base['threads']} thr: {base['median_ms'] / r['median_ms']:.2f}x"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--cpu-threads", default="1", help="comma-separated CPU thread counts to time")
    ap.add_argument("--scale", action="store_true", help="also time a bigger learner")
    ap.add_argument("--scale-iters", type=int, default=5, help="timed updates of the bigger learner")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    args = ap.parse_args()
    args.cpu_threads = [int(x) for x in args.cpu_threads.split(",")]
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads available, "
        f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}; TF32 matmul "
        f"{torch.backends.cuda.matmul.allow_tf32}"
    )
    rows = run_setting("default", 512, 16, 64, PPOHyper(lr=0.01, epochs=1, minibatch_size=4096), args)
    if args.scale:
        args.iters, args.warmup = args.scale_iters, 1
        rows += run_setting("scaled", 2048, 16, 256, PPOHyper(lr=3e-4, epochs=4, minibatch_size=8192), args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
