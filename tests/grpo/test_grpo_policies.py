"""Text-policy backends: bag-of-words LM and a tiny GPT-2 loaded through from_pretrained (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dspy_rl.grpo.policy import build_policy, load_policy
from dspy_rl.models.bow import BagOfWordsLM, WordVocab
from dspy_rl.models.hf import HFCausalLMPolicy, build_tiny_causal_lm

TEXTS = [
    "goal: show README.md . command:",
    "cat README.md",
    "goal: enter src . command:",
    "cd src",
    "ls docs",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return build_tiny_causal_lm(
        tmp_path_factory.mktemp("tiny"), TEXTS, n_layer=2, n_embd=32, n_head=2, seed=3
    )


@pytest.fixture(scope="module")
def hf_policy(tiny_dir: Path) -> HFCausalLMPolicy:
    torch.set_num_threads(1)
    return HFCausalLMPolicy.from_pretrained(tiny_dir, local_files_only=True)


# ---------------- bag of words ----------------


def test_bow_logprobs_equal_the_linear_model_by_hand():
    vocab = WordVocab.build(TEXTS)
    m = BagOfWordsLM(vocab, max_positions=4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    prompt, response = "goal: show README.md . command:", "cat README.md"
    ids = m.tokenize_response(response)
    assert ids[-1] == vocab.eos_id and len(ids) == 3
    logp, mask = m.token_logprobs(m.encode([prompt, "cd src"], [ids, m.tokenize_response("ls")]))
    assert mask.tolist() == [[True, True, True], [True, True, False]]
    bag = torch.zeros(len(vocab))
    bag[vocab.encode(prompt)] = 1.0
    prev = [len(vocab)] + ids[:-1]  # begin-of-response symbol, then the previous words
    expected = []
    for t, (y, y_prev) in enumerate(zip(ids, prev, strict=True)):
        logits = m.prompt_proj.weight @ bag + m.prompt_proj.bias + m.prev.weight[y_prev] + m.pos.weight[t]
        logits[vocab.pad_id] = -torch.inf  # <pad> cannot be emitted
        expected.append(torch.log_softmax(logits, -1)[y])
    torch.testing.assert_close(logp[0], torch.stack(expected).detach())
    assert logp[1, 2] == 0  # padding is zeroed and masked


def test_bow_zero_init_is_uniform_and_round_trips(tmp_path: Path):
    vocab = WordVocab.build(TEXTS)
    m = BagOfWordsLM(vocab, temperature=1.0)
    logp, _ = m.token_logprobs(m.encode(["x"], [m.tokenize_response("cd src")]))
    # uniform over every word except <pad>
    torch.testing.assert_close(logp, torch.full((1, 3), -torch.log(torch.tensor(float(len(vocab) - 1)))))
    with torch.no_grad():
        m.pos.weight.add_(0.5)
        m.prompt_proj.weight[3, 4] = 2.0
    m.save_pretrained(tmp_path / "bow")
    loaded = load_policy(tmp_path / "bow")
    assert isinstance(loaded, BagOfWordsLM) and loaded.vocab.words == vocab.words
    for a, b in zip(m.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(FileNotFoundError, match="not a saved bag-of-words model"):
        BagOfWordsLM.from_pretrained(tmp_path / "nothing")


def test_bow_sampling_stops_at_eos_and_respects_the_limit():
    vocab = WordVocab.build(TEXTS)
    m = BagOfWordsLM(vocab)
    with torch.no_grad():  # make <eos> certain at position 2
        m.pos.weight[2, vocab.eos_id] = 50.0
    out = m.sample(
        ["goal: enter src . command:"] * 16, max_new_tokens=5, generator=torch.Generator().manual_seed(1)
    )
    assert all(len(r) == 3 and r[-1] == vocab.eos_id for r in out)
    short = m.sample(["p"] * 4, max_new_tokens=1, generator=torch.Generator().manual_seed(1))
    assert all(len(r) == 1 for r in short)


# ---------------- Hugging Face causal LM ----------------


def test_hf_loads_from_a_local_directory_with_the_built_tokenizer(
    tiny_dir: Path, hf_policy: HFCausalLMPolicy
):
    assert (tiny_dir / "config.json").is_file() and (tiny_dir / "tokenizer.json").is_file()
    assert hf_policy.decode_response(hf_policy.tokenize_response("cat README.md")) == "cat README.md"
    assert hf_policy.tokenize_response("cat README.md")[-1] == hf_policy.eos_id
    assert isinstance(load_policy(tiny_dir), HFCausalLMPolicy)
    with pytest.raises(FileNotFoundError, match="could not load a causal LM"):
        HFCausalLMPolicy.from_pretrained(tiny_dir / "missing", local_files_only=True)


def test_hf_response_logprobs_mask_the_prompt_and_ignore_padding(hf_policy: HFCausalLMPolicy):
    prompts = ["goal: show README.md . command:", "cd src"]
    responses = [hf_policy.tokenize_response("cat README.md"), hf_policy.tokenize_response("ls docs src")]
    logp, mask = hf_policy.token_logprobs(hf_policy.encode(prompts, responses))
    assert mask.sum(1).tolist() == [3, 4]
    for row in range(2):  # each row equals the unpadded sequence scored on its own
        p_ids = hf_policy._prompt_ids(prompts[row])
        full = torch.tensor([p_ids + responses[row]])
        with torch.no_grad():
            logits = hf_policy.model(input_ids=full).logits[0].float()
        logits[:, [hf_policy.pad_id, hf_policy.bos_id]] = -torch.inf  # padding and bos cannot be emitted
        lp = torch.log_softmax(logits[:-1], -1).gather(1, full[0, 1:, None]).squeeze(1)
        expected = lp[len(p_ids) - 1 :]  # only the response tokens are scored
        torch.testing.assert_close(logp[row, : len(responses[row])].detach(), expected, atol=1e-5, rtol=1e-5)
    assert logp[0, 3] == 0 and not mask[0, 3]


def test_hf_kv_cache_sampling_matches_uncached_greedy_decoding(hf_policy: HFCausalLMPolicy):
    prompts = ["goal: show README.md . command:", "cd", "ls docs src README.md"]
    cold = HFCausalLMPolicy(hf_policy.model, hf_policy.tokenizer, temperature=1e-4)  # ~greedy
    sampled = cold.sample(prompts, max_new_tokens=5, generator=torch.Generator().manual_seed(0))
    for prompt, ids in zip(prompts, sampled, strict=True):
        seq = hf_policy._prompt_ids(prompt)
        greedy = []
        with torch.no_grad():
            for _ in range(len(ids)):
                logits = hf_policy.model(input_ids=torch.tensor([seq])).logits[0, -1]
                logits[[hf_policy.pad_id, hf_policy.bos_id]] = -torch.inf
                nxt = int(logits.argmax())
                greedy.append(nxt)
                seq.append(nxt)
                if nxt == hf_policy.eos_id:
                    break
        assert ids == greedy
        assert len(ids) == 5 or ids[-1] == hf_policy.eos_id
    # repeats: one prompt encoding, the KV cache copied per completion, prompt-major order
    repeated = cold.sample(prompts, max_new_tokens=5, generator=torch.Generator().manual_seed(0), repeats=3)
    assert repeated == [ids for ids in sampled for _ in range(3)]


def test_padding_and_bos_can_never_be_sampled(hf_policy: HFCausalLMPolicy):
    bias = hf_policy.model.lm_head.weight.new_zeros(hf_policy.model.lm_head.weight.shape[0])
    bias[[hf_policy.pad_id, hf_policy.bos_id]] = 100.0  # the raw model would pick them almost surely
    hook = hf_policy.model.lm_head.register_forward_hook(lambda mod, inp, out: out + bias)
    try:
        out = hf_policy.sample(["cd src"] * 8, max_new_tokens=4, generator=torch.Generator().manual_seed(0))
        logp, mask = hf_policy.token_logprobs(hf_policy.encode(["cd src"] * 8, out))
    finally:
        hook.remove()
    assert not any(t in (hf_policy.pad_id, hf_policy.bos_id) for r in out for t in r)
    assert torch.isfinite(logp).all() and mask.any()


def test_build_policy_names(tmp_path: Path):
    assert isinstance(build_policy("bow", TEXTS, tmp_path), BagOfWordsLM)
    tiny = build_policy("tiny-gpt2", TEXTS, tmp_path, tiny_embd=16, tiny_heads=2, tiny_layers=1)
    assert isinstance(tiny, HFCausalLMPolicy) and (tmp_path / "tiny-gpt2-init" / "config.json").is_file()
