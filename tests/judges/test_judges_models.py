"""Model-backed judges: transformer (train, checkpoint, load), embedding (MiniLM offline), LLM (local stub)."""

from __future__ import annotations

import json

import pytest

from dspy_rl.judges.base import JudgeItem


def test_transformer_judge_ranks_held_out_pairs_better_than_chance(tiny_checkpoint, make_pairs):
    from dspy_rl.judges.transformer import TransformerJudge, load_reward_model, pairwise_accuracy

    model, summary = load_reward_model(tiny_checkpoint.parent)  # a directory works too
    held_out = make_pairs(200, seed=123)
    acc = pairwise_accuracy(model, held_out)
    assert acc >= 0.7, acc  # chance is 0.5; half the rejected answers are as long as the chosen ones
    assert summary["steps"] == 60 and summary["final_loss"] < 0.6931  # below the loss of a coin flip
    judge = TransformerJudge(tiny_checkpoint, name="tf")
    p = held_out[0]
    good, bad = judge.score_batch([JudgeItem(p.query, p.chosen), JudgeItem(p.query, "no idea")])
    assert 0 < bad.score < good.score < 1
    assert "reward" in good.components


def test_transformer_checkpoint_errors_are_explicit(tmp_path):
    from dspy_rl.judges.transformer import load_pairs, load_reward_model, train_preference_model

    with pytest.raises(FileNotFoundError, match="train-judge"):
        load_reward_model(tmp_path)
    (tmp_path / "judge.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):  # noqa: B017 - torch raises its own unpickling error type
        load_reward_model(tmp_path)
    bad = tmp_path / "pairs.jsonl"
    bad.write_text(json.dumps({"query": "q", "chosen": "a"}) + "\n")
    with pytest.raises(ValueError, match="pairs.jsonl:1"):
        load_pairs(bad)
    with pytest.raises(ValueError, match="at least 2"):
        train_preference_model([], tmp_path)


def test_embedding_judge_loads_minilm_offline_and_prefers_the_related_answer(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from dspy_rl.judges.embedding import EmbeddingJudge, minilm_dir

    judge = EmbeddingJudge()
    assert judge.embed(["hello"]).shape == (1, 384)
    q = "How do I reverse a list in Python?"
    ref = "Use list.reverse() to reverse in place, or slicing lst[::-1] for a reversed copy."
    related, unrelated = judge.score_batch(
        [
            JudgeItem(q, "Call my_list.reverse(), or use my_list[::-1] to get a reversed copy.", ref),
            JudgeItem(q, "The weather in Paris is mild in spring.", ref),
        ]
    )
    assert related.score > 0.6 > unrelated.score
    assert related.components["cosine"] > unrelated.components["cosine"]
    assert (minilm_dir() / "model.safetensors").exists()


def test_llm_judge_speaks_chat_completions(openai_stub, monkeypatch):
    from dspy_rl.judges.llm import LLMJudge, LLMJudgeError, parse_score

    url, state = openai_stub
    monkeypatch.setenv("STUB_KEY", "sk-test")
    judge = LLMJudge(url, model="stub-model", api_key_env="STUB_KEY", timeout_s=5)
    (s,) = judge.score_batch([JudgeItem("2+2?", "4", "4")])
    assert s.score == pytest.approx(0.8) and s.components["grade"] == 8
    req = state.requests[-1]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "stub-model" and req["body"]["messages"][0]["role"] == "system"
    assert "Reference answer" in req["body"]["messages"][1]["content"]
    state.reply = "I cannot grade this."
    with pytest.raises(LLMJudgeError, match="no 'SCORE"):
        judge.score_batch([JudgeItem("q", "a")])
    state.status = 500
    with pytest.raises(LLMJudgeError, match="HTTP 500"):
        judge.score_batch([JudgeItem("q", "a")])
    assert parse_score("meh SCORE: 3\nfinal SCORE=7.5") == 7.5
    with pytest.raises(LLMJudgeError, match="outside"):
        parse_score("SCORE: 11")
    with pytest.raises(ValueError, match="http"):
        LLMJudge("localhost:1234", model="m")
