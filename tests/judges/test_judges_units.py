"""Judges without Serve: rubric parts and rewards, ensemble deadline/aggregation, item validation."""

from __future__ import annotations

import asyncio

import pytest

from dspy_rl.control.concurrency import ConcurrencyLimiter
from dspy_rl.control.limiter import LimiterConfig
from dspy_rl.judges.base import InvalidItem, JudgeItem, JudgeScore
from dspy_rl.judges.ensemble import NoJudgeAnswered, aggregate, fan_out, judge_batch, validate_weights
from dspy_rl.judges.rubric import RubricJudge, coordination_reward, token_f1, tool_reward

GOOD = """The test fails because `parse()` returns None for empty input.

1. Add a guard in `parse()` for the empty string.
2. Re-run pytest; for example `pytest tests/test_parse.py` should pass.

```python
if not text:
    return []
```
"""


def test_rubric_parts_are_bounded_and_rank_a_good_answer_higher():
    judge = RubricJudge()
    q = "Why does the parse test fail on empty input and how do I fix parse?"
    ref = "parse returns None for empty input; add a guard returning an empty list, then rerun pytest."
    good, bad = judge.score_batch([JudgeItem(q, GOOD, ref), JudgeItem(q, "idk", ref)])
    for s in (good, bad):
        assert 0 <= s.components["structure"] <= 0.3
        assert 0 <= s.components["depth"] <= 0.4
        assert 0 <= s.components["similarity"] <= 0.3
        assert s.score == pytest.approx(
            sum(s.components[k] for k in ("structure", "depth", "similarity")), abs=1e-3
        )
    assert good.score > bad.score + 0.3
    assert good.components["structure"] >= 0.25  # paragraphs, list, code block, sentences
    assert "similarity to reference" in good.explanation


def test_token_f1_exact_values():
    assert token_f1("the cat sat", "cat sat") == pytest.approx(1.0)
    assert token_f1("cat dog", "cat fish") == pytest.approx(0.5)
    assert token_f1("", "cat") == 0.0


def test_tool_and_coordination_rewards():
    assert tool_reward(["success", "success", "error", "empty"]) == pytest.approx(0.5)
    assert coordination_reward(
        {"rounds": 3, "quality": 0.5, "consensus": True, "tokens": 1000}
    ) == pytest.approx(2 * 0.5 + 1.0 - 0.1 * 2 - 0.1)
    assert coordination_reward(
        {"rounds": 1, "quality": 1.0, "consensus": False, "tokens": 0}
    ) == pytest.approx(1.5)
    with pytest.raises(InvalidItem, match="tool_results"):
        tool_reward(["timeout"])
    with pytest.raises(InvalidItem, match="rounds >= 1"):
        coordination_reward({"rounds": 0})
    item = JudgeItem(
        "q", "a", context={"tool_results": ["success"], "coordination": {"rounds": 1, "quality": 1.0}}
    )
    (s,) = RubricJudge().score_batch([item])
    assert s.components["tool_reward"] == 1.0 and s.components["coordination_reward"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"response": "x"}, "missing field 'query'"),
        ({"query": 1, "response": "x"}, "'query' must be a string"),
        ({"query": "q", "response": "x" * 11}, "limit is 10"),
        ({"query": "q", "response": "x", "context": []}, "'context' must be an object"),
        ({"query": "q", "response": "x", "extra": 1}, "unknown field"),
        ("just text", "must be an object"),
    ],
)
def test_item_validation_messages(body, match):
    with pytest.raises(InvalidItem, match=match):
        JudgeItem.from_dict(body, max_chars=10)


def test_score_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="outside"):
        JudgeScore(1.5)


def _answer(score: float) -> dict:
    return {"score": score, "explanation": f"s={score}", "components": {}}


def test_aggregate_renormalizes_weights_over_answered_judges():
    out = aggregate(
        {"a": _answer(0.2), "b": _answer(0.8)}, {"a": 1.0, "b": 3.0, "c": 4.0}, {"c": "timeout after 1s"}
    )
    assert out["score"] == pytest.approx((0.2 * 1 + 0.8 * 3) / 4)
    assert out["spread"] == pytest.approx(0.6)
    assert out["answered"] == ["a", "b"] and out["left_out"] == {"c": "timeout after 1s"}
    assert "left out: c (timeout after 1s)" in out["explanation"]
    with pytest.raises(NoJudgeAnswered, match="c: down"):
        aggregate({}, {"c": 1.0}, {"c": "down"})


def test_fan_out_leaves_out_slow_failing_and_malformed_judges():
    async def fast():
        return [_answer(0.5), _answer(0.7)]

    async def slow():
        await asyncio.sleep(5)
        return [_answer(1.0), _answer(1.0)]

    async def broken():
        raise ConnectionError("replica died")

    async def short():
        return [_answer(0.1)]

    async def run():
        return await judge_batch(
            {"fast": fast, "slow": slow, "broken": broken, "short": short},
            {"fast": 1.0, "slow": 1.0, "broken": 1.0, "short": 1.0},
            n_items=2,
            deadline_s=0.2,
        )

    first, second = asyncio.run(asyncio.wait_for(run(), 3))
    assert first["score"] == 0.5 and second["score"] == 0.7
    assert first["answered"] == ["fast"]
    assert first["left_out"]["slow"] == "timeout after 0.2s"
    # the kind only: a judge's error text (Ray's carries node addresses and PIDs) stays in the service log
    assert first["left_out"]["broken"] == "error (ConnectionError)"
    assert first["left_out"]["short"] == "error: expected 2 scores, got 1"


def test_fan_out_sheds_a_saturated_judge_without_waiting():
    lim = ConcurrencyLimiter(LimiterConfig(base_limit=1, min_limit=1, max_limit=1))
    held = lim.try_acquire()

    async def judge():
        return [_answer(0.9)]

    async def run():
        return await fan_out({"a": judge, "b": judge}, 1.0, 1, limiters={"b": lim})

    answers, left_out = asyncio.run(run())
    assert list(answers) == ["a"] and left_out == {"b": "shed (limit 1 in flight)"}
    held.release()
    answers, left_out = asyncio.run(run())
    assert sorted(answers) == ["a", "b"] and not left_out
    assert lim.stats().in_flight == 0


def test_validate_weights():
    assert validate_weights({"a": 1, "b": 0}, ["a", "b"]) == {"a": 1.0, "b": 0.0}
    with pytest.raises(ValueError, match="no weight"):
        validate_weights({"a": 1}, ["a", "b"])
    with pytest.raises(ValueError, match="at least one > 0"):
        validate_weights({"a": 0}, ["a"])
