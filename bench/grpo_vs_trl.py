"""GRPO throughput and memory: dspy-rl's text GRPO vs TRL's GRPOTrainer, same model, data and settings, one run.

Both sides train the *same* tiny GPT-2 (built once from a config with a word-level tokenizer, saved, loaded by each
side with ``from_pretrained``) on the prompts of the verifiable ``tool_commands`` task, scored by the same rubric,
with the same group size G, prompts per step, completion length, learning rate, clip range, KL coefficient (so both
keep a frozen reference model), temperature and torch thread count; one optimizer step per generation batch
(TRL ``num_iterations=1``; ours ``updates_per_batch=1``) and the same loss aggregation (``loss_type="grpo"`` /
``aggregation="sequence"``). Ours keeps zero-advantage groups in the loss as TRL does (``drop_no_signal=false``).

Each side runs in its own fresh subprocess, so their memory numbers do not mix:

* ``samples/s``: completions trained per second of wall time, from the end of the first step (warm-up) to the end of
  the last one; each step = sample G completions for each prompt, score them, one loss/backward/optimizer step.
  Each side runs ``--repeats`` times, alternating with the other; the median is reported (all values in the JSON).
* ``peak RSS``: the process's peak resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``) over its lifetime,
  imports included; ``setup RSS``: resident set size after imports and model loading, before training;
  ``train delta`` = peak - setup, the memory the training loop itself added. On CUDA also ``torch.cuda`` peak.

    python bench/grpo_vs_trl.py --steps 30 --group-size 8 --prompts 8 --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _common_setup(args: argparse.Namespace):
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from dspy_rl.grpo.rewards import ToolCommandRubric
    from dspy_rl.grpo.tasks import load_task

    task = load_task("tool_commands")
    return torch, task, ToolCommandRubric(task)


def _prompt_order(task, args) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(args.seed)
    n = args.steps * args.prompts
    idx = np.concatenate([rng.permutation(len(task.items)) for _ in range(n // len(task.items) + 1)])[:n]
    return [task.items[i].prompt for i in idx]


def _worker_ours(args: argparse.Namespace) -> dict:
    torch, task, rubric = _common_setup(args)
    from dspy_rl.grpo.config import GRPOTrainConfig
    from dspy_rl.grpo.online import sample_groups
    from dspy_rl.grpo.trainer import GRPOTextTrainer
    from dspy_rl.models.hf import HFCausalLMPolicy

    device = torch.device(args.device)
    policy = HFCausalLMPolicy.from_pretrained(args.model_dir, temperature=1.0, local_files_only=True).to(
        device
    )
    cfg = GRPOTrainConfig(
        mode="online", model=args.model_dir, steps=args.steps, batch_groups=args.prompts,
        group_size=args.group_size, max_new_tokens=args.max_new_tokens, lr=args.lr, kl_target=args.beta,
        kl_warmup=0, clip_eps=0.2, max_grad_norm=1.0, aggregation="sequence", drop_no_signal=False,
        updates_per_batch=1, device=args.device,
    )  # fmt: skip
    trainer = GRPOTextTrainer(policy, cfg)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    prompts = _prompt_order(task, args)
    setup_rss = _rss_mb()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stamps, rewards = [], []
    for step in range(args.steps):
        batch = prompts[step * args.prompts : (step + 1) * args.prompts]
        sampled = sample_groups(policy, batch, rubric, args.group_size, args.max_new_tokens, gen)
        m = trainer.update(sampled.prompts, sampled.responses, sampled.rewards, sampled.group_ids)
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        rewards.append(m["reward_mean"])
    return _result("dspy-rl", args, stamps, rewards, setup_rss, torch)


def _worker_trl(args: argparse.Namespace) -> dict:
    torch, task, rubric = _common_setup(args)
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    transformers.utils.logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, local_files_only=True)
    dataset = Dataset.from_dict({"prompt": _prompt_order(task, args)})
    stamps: list[float] = []
    rewards: list[float] = []

    def reward_fn(prompts, completions, **_):
        scores = rubric(prompts, completions)
        rewards.append(sum(scores) / len(scores))
        return scores

    class Stamp(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if torch.cuda.is_available() and args.device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

    out_dir = tempfile.mkdtemp(prefix="trl_grpo_")
    config = GRPOConfig(
        output_dir=out_dir, max_steps=args.steps, per_device_train_batch_size=args.prompts * args.group_size,
        gradient_accumulation_steps=1, num_generations=args.group_size, max_completion_length=args.max_new_tokens,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        beta=args.beta, epsilon=0.2, num_iterations=1, loss_type="grpo", scale_rewards="group",
        temperature=1.0, top_p=1.0, top_k=0, disable_dropout=True, shuffle_dataset=False, seed=args.seed,
        use_cpu=not args.device.startswith("cuda"), bf16=args.device.startswith("cuda"), report_to="none",
        save_strategy="no", logging_steps=10**6, dataloader_num_workers=0, log_completions=False,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=model, reward_funcs=reward_fn, args=config, train_dataset=dataset, processing_class=tokenizer,
        callbacks=[Stamp()],
    )  # fmt: skip
    setup_rss = _rss_mb()
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return _result("trl", args, stamps, rewards, setup_rss, torch)


def _result(name: str, args, stamps: list[float], rewards: list[float], setup_rss: float, torch) -> dict:
    if len(stamps) < 2:
        raise RuntimeError(f"{name}: recorded {len(stamps)} step(s); need at least 2 (use --steps >= 2)")
    timed_steps = len(stamps) - 1
    wall = stamps[-1] - stamps[0]
    out = {
        "name": name,
        "steps": len(stamps),
        "timed_steps": timed_steps,
        "samples_per_s": timed_steps * args.prompts * args.group_size / wall,
        "s_per_step": wall / timed_steps,
        "peak_rss_mb": _peak_rss_mb(),
        "setup_rss_mb": setup_rss,
        "train_delta_mb": _peak_rss_mb() - setup_rss,
        "reward_first": rewards[0] if rewards else None,
        "reward_last": rewards[-1] if rewards else None,
    }
    if args.device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument(
        "--prompts", type=int, default=8, help="prompts per step (each gets --group-size completions)"
    )
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--beta", type=float, default=0.04, help="KL coefficient (> 0: both sides keep a reference)"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads in each worker")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--embd", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--repeats", type=int, default=3, help="runs per side, alternating; the median is reported"
    )
    ap.add_argument("--only", choices=["ours", "trl"], help="run one side only")
    ap.add_argument("--worker", choices=["ours", "trl"], help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "grpo_vs_trl.json"))
    args = ap.parse_args()
    if args.steps < 2:
        ap.error("--steps must be >= 2 (the first step is warm-up and not timed)")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    if args.worker:
        fn = _worker_ours if args.worker == "ours" else _worker_trl
        print("RESULT " + json.dumps(fn(args)), flush=True)
        return 0

    from dspy_rl.grpo.tasks import load_task
    from dspy_rl.models.hf import build_tiny_causal_lm

    model_dir = Path(tempfile.mkdtemp(prefix="grpo_bench_model_"))
    build_tiny_causal_lm(
        model_dir, load_task("tool_commands").texts(), n_layer=args.layers, n_embd=args.embd, n_head=2
    )
    sides = [s for s in ("ours", "trl") if not args.only or s == args.only]
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    keys = ("steps", "group_size", "prompts", "max_new_tokens", "lr", "beta", "threads", "device", "seed")
    for rep in range(args.repeats):  # alternate sides so slow drifts in machine load hit both alike
        for side in sides:
            cmd = [sys.executable, __file__, "--worker", side, "--model-dir", str(model_dir)]
            for k in keys:
                cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
            env = {**os.environ, "PYTHONWARNINGS": "ignore"}
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
                raise SystemExit(f"{side} worker failed with exit code {proc.returncode}")
            runs[side].append(json.loads(lines[-1][len("RESULT ") :]))
            print(
                f"repeat {rep + 1}/{args.repeats} {side}: {runs[side][-1]['samples_per_s']:.1f} samples/s",
                flush=True,
            )
    results = []
    for side in sides:  # median throughput over repeats; the largest memory seen
        rs = sorted(runs[side], key=lambda r: r["samples_per_s"])
        med = dict(rs[len(rs) // 2])
        for k in ("peak_rss_mb", "setup_rss_mb", "train_delta_mb", "cuda_peak_mb"):
            if k in med:
                med[k] = max(r[k] for r in rs)
        med["samples_per_s_all"] = [r["samples_per_s"] for r in runs[side]]
        results.append(med)

    cols = ["name", "samples_per_s", "s_per_step", "peak_rss_mb", "setup_rss_mb", "train_delta_mb", "reward_first", "reward_last"]  # fmt: skip
    if args.device.startswith("cuda"):
        cols.append("cuda_peak_mb")
    print(" | ".join(f"{c:>14}" for c in cols))
    for r in results:
        print(" | ".join(f"{r[c]:>14.3f}" if isinstance(r[c], float) else f"{str(r[c]):>14}" for c in cols))
    ratios = {}
    if len(results) == 2:
        ours, trl = results
        ratios = {
            "throughput_ratio": ours["samples_per_s"] / trl["samples_per_s"],
            "peak_rss_ratio": ours["peak_rss_mb"] / trl["peak_rss_mb"],
            "train_delta_ratio": ours["train_delta_mb"] / max(trl["train_delta_mb"], 1e-9),
        }
        print(
            f"throughput ours/trl = {ratios['throughput_ratio']:.2f}x (target >= 1.5x); peak RSS ours/trl = "
            f"{ratios['peak_rss_ratio']:.2f}; training-loop RSS growth ours/trl = {ratios['train_delta_ratio']:.2f}"
        )
    import torch
    import transformers

    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = None
    record = {
        "bench": "grpo_vs_trl",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            k: getattr(args, k)
            for k in (
                "steps",
                "group_size",
                "prompts",
                "max_new_tokens",
                "lr",
                "beta",
                "threads",
                "layers",
                "embd",
                "device",
                "seed",
                "repeats",
            )
        },
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl_version,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "results": results,
        **ratios,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
