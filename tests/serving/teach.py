"""Teach a tiny causal LM fixed (prompt -> response) demonstrations, so a served tiny model can drive a real agent.

The model is built locally from the demonstrations' own words (word-level tokenizer, random init) and trained with
the causal-LM loss on the response tokens only, using the exact prompt rendering and tokenization of `serve lm`
(:class:`dspy_rl.serving.lm_engine.LMEngine`). It memorizes: it answers the prompts it was shown, nothing more.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dspy_rl.models.hf import build_tiny_causal_lm
from dspy_rl.serving.lm_engine import LMEngine


def teach_tiny_lm(
    directory: Path,
    demos: list[tuple[list[dict], str]],
    *,
    n_positions: int = 256,
    max_tokens: int = 40,
    steps: int = 200,
    lr: float = 5e-3,
    seed: int = 0,
) -> tuple[Path, float]:
    """Train on ``demos`` = [(chat messages, response text)]; returns (model dir, final loss).

    The model has ``n_positions`` positions; `serve lm` keeps the last ``n_positions - max_tokens`` prompt tokens
    of a request with that ``max_tokens``, so training sees exactly those (the prompts' tails tell the agent's
    steps apart).
    """
    probe = LMEngine(None)  # only for the prompt rendering (identical for any plain-format model)
    prompts = [probe.render_chat(m) for m, _ in demos]
    probe.close()
    texts = prompts + [r for _, r in demos]
    build_tiny_causal_lm(directory, texts, n_positions=n_positions, n_layer=2, n_embd=64, seed=seed)
    engine = LMEngine(str(directory))
    policy = engine.policy
    rows, masks = [], []
    for prompt, (_, response) in zip(prompts, demos, strict=True):
        p = engine.encode(prompt)[-(n_positions - max_tokens) :]
        r = policy.tokenize_response(response)
        rows.append(p + r)
        masks.append([0] * len(p) + [1] * len(r))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), policy.pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    lab_mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        att[i, : len(r)] = 1
        lab_mask[i, : len(m)] = torch.tensor(m, dtype=torch.bool)
    model = policy.model
    model.train()
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared 2-core machine: oversubscribed threads only slow this down
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
        target = ids[:, 1:]
        m = lab_mask[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits[m], target[m])
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.set_num_threads(threads)
    model.eval()
    policy.save_pretrained(directory)
    engine.close()
    return directory, float(loss.detach())
