"""The performance switches, measured on and off in one run: ``runtime.compile`` and ``gradient_checkpointing``.

1. PPO learner updates (the env trainer's ``PPOLearner.update``, the default network) with and without
   ``torch.compile``: the one-off compile time and the steady-state time per update (median of ``--updates``).
2. Text GRPO steps (``GRPOTextTrainer.update`` on a GPT-2 built locally from a config) with and without gradient
   checkpointing: step time and peak memory (CUDA: ``max_memory_allocated``; CPU: the growth of the process's
   peak RSS is too coarse, so the activations kept for backward are measured with saved-tensor hooks instead).

    python bench/perf_switches.py [--updates 20] [--grpo-steps 5] [--layers 4] [--embd 256] [--seq 64]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from dspy_rl.config import compose, to_object
from dspy_rl.grpo.config import GRPOTrainConfig
from dspy_rl.grpo.policy import enable_gradient_checkpointing
from dspy_rl.grpo.trainer import GRPOTextTrainer
from dspy_rl.learners.ppo import BATCH_KEYS, PPOHyper, PPOLearner
from dspy_rl.models.hf import HFCausalLMPolicy, build_tiny_causal_lm
from dspy_rl.models.policy import MultiPolicy


def ppo_batch(n: int, obs: int, tools: int, args: int, seed: int) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    b = {
        "obs": r.random((n, obs), dtype=np.float32),
        "tool_mask": np.ones((n, tools), bool),
        "arg_mask": np.ones((n, args), bool),
        "phase": r.integers(0, 2, n),
        "tools": r.integers(0, tools, n),
        "args": r.integers(0, args, n),
        "arg_active": r.integers(0, 2, n).astype(bool),
        "logp_tool": np.full(n, -np.log(tools), np.float32),
        "logp_arg": np.full(n, -np.log(args), np.float32),
    }
    for k in ("adv_tool", "ret_tool", "adv_arg", "ret_arg"):
        b[k] = r.standard_normal(n).astype(np.float32)
    assert set(b) == set(BATCH_KEYS)
    return b


def bench_compile(updates: int, device: torch.device) -> dict[str, dict[str, float]]:
    """Default-sized learner (hidden 64, batch 64 envs x 32 steps, minibatch 512, 4 epochs), same batches."""
    out = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        learner = PPOLearner(
            MultiPolicy(obs_dim=96, num_tools=24, num_args=8, hidden=64),
            PPOHyper(minibatch_size=512, epochs=4),
            device,
            0,
            False,
            compiled,
        )
        batches = [ppo_batch(2048, 96, 24, 8, seed=i) for i in range(updates + 1)]
        t = time.perf_counter()
        first = learner.update(batches[0])
        first_s = time.perf_counter() - t
        times, losses = [], [first["loss"]]
        for b in batches[1:]:
            t = time.perf_counter()
            losses.append(learner.update(b)["loss"])
            times.append(time.perf_counter() - t)
        out["compile" if compiled else "eager"] = {
            "first_update_s": first_s,
            "update_ms_median": 1e3 * statistics.median(times),
            "last_loss": losses[-1],
        }
    return out


def saved_activation_bytes(fn) -> tuple[object, int]:
    """Bytes of the tensors autograd saves for backward while ``fn`` runs (the memory checkpointing trades)."""
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total


def bench_checkpointing(
    steps: int, layers: int, embd: int, seq: int, device: torch.device, workdir: str
) -> dict:
    words = [f"w{i}" for i in range(200)]
    model_dir = build_tiny_causal_lm(
        workdir, [" ".join(words)], n_layer=layers, n_embd=embd, n_head=4, n_positions=2 * seq + 8, seed=0
    )
    cfg = to_object(
        compose("grpo", ["dataset=unused.jsonl", "model=tiny-gpt2", "kl_target=0.04", "kl_warmup=0"]),
        GRPOTrainConfig,
    )
    rng = np.random.default_rng(0)
    groups, size = 4, 8
    prompts = [" ".join(rng.choice(words, seq)) for _ in range(groups) for _ in range(size)]
    response_texts = [" ".join(rng.choice(words, seq)) for _ in prompts]  # the same data for both settings
    rewards = rng.random(len(prompts)).tolist()
    out = {}
    for on in (False, True):
        torch.manual_seed(0)
        policy = HFCausalLMPolicy.from_pretrained(model_dir, local_files_only=True).to(device)
        if on:
            enable_gradient_checkpointing(policy)
        trainer = GRPOTextTrainer(policy, cfg)
        responses = [policy.tokenize_response(t) for t in response_texts]
        gids = [i // size for i in range(len(prompts))]
        batch = policy.encode(prompts, responses)
        policy.eval()
        _, saved = saved_activation_bytes(lambda: policy.token_logprobs(batch)[0].sum())  # noqa: B023
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times, grads = [], []
        for _ in range(steps):
            t = time.perf_counter()
            grads.append(trainer.update(prompts, responses, rewards, gids)["grad_norm"])
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t)
        row = {
            "step_ms_median": 1e3 * statistics.median(times),
            "saved_for_backward_mb": saved / 2**20,
            "grad_norm_first": grads[0],
        }
        if device.type == "cuda":
            row["peak_cuda_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        out["checkpointing" if on else "plain"] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--grpo-steps", type=int, default=5)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--embd", type=int, default=256)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-compile", action="store_true")
    a = ap.parse_args()
    import tempfile

    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    result: dict = {"device": str(dev), "torch": torch.__version__, "threads": a.threads}
    if not a.skip_compile:
        c = bench_compile(a.updates, dev)
        c["ratio_eager_over_compiled"] = c["eager"]["update_ms_median"] / c["compile"]["update_ms_median"]
        result["compile"] = c
    with tempfile.TemporaryDirectory() as tmp:
        g = bench_checkpointing(a.grpo_steps, a.layers, a.embd, a.seq, dev, tmp)
    g["time_ratio_ckpt_over_plain"] = g["checkpointing"]["step_ms_median"] / g["plain"]["step_ms_median"]
    g["saved_ratio_ckpt_over_plain"] = (
        g["checkpointing"]["saved_for_backward_mb"] / g["plain"]["saved_for_backward_mb"]
    )
    result["gradient_checkpointing"] = g
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
