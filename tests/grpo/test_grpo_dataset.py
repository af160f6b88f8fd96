"""Grouped-JSONL validation (line numbers, reasons, skip/fail, no-signal counts) and the resumable sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.grpo.dataset import DatasetError, GroupSampler, flatten_groups, load_groups, parse_group


def _line(prompt="p", cands=(("a", 1.0), ("b", 0.0)), **extra) -> str:
    return json.dumps({"prompt": prompt, "candidates": [{"text": t, "reward": r} for t, r in cands], **extra})


@pytest.fixture()
def mixed_file(tmp_path: Path) -> Path:
    lines = [
        _line("good one", meta={"signature": "s"}),  # 1 ok
        "{not json",  # 2 bad JSON
        _line("single", cands=(("a", 1.0),)),  # 3 <2 candidates
        _line("same", cands=(("a", 0.5), ("b", 0.5), ("c", 0.5))),  # 4 all-equal
        "",  # 5 blank: ignored
        json.dumps({"prompt": "p", "candidates": [{"text": "a", "reward": "high"}]}),  # 6 reward not a number
        json.dumps({"prompt": "", "candidates": []}),  # 7 empty prompt
        json.dumps({"prompt": "p", "candidate": []}),  # 8 misspelt key
        json.dumps([1, 2]),  # 9 not an object
        json.dumps(
            {"prompt": "p", "candidates": [{"text": "a", "reward": 1}], "meta": []}
        ),  # 10 meta not object
        _line("good two", cands=(("x", 0.0), ("y", 2.0), ("z", 1.0))),  # 11 ok
        json.dumps(
            {"prompt": "p", "candidates": [{"text": "a", "reward": True}, {"text": "b", "reward": 0}]}
        ),  # 12
        '{"prompt": "p", "candidates": [{"text": "a", "reward": NaN}, {"text": "b", "reward": 0}]}',  # 13 NaN
    ]
    path = tmp_path / "groups.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_lines_are_reported_with_line_numbers_and_reasons(mixed_file: Path):
    groups, report = load_groups(mixed_file, on_bad_line="skip")
    assert [g.prompt for g in groups] == ["good one", "good two"]
    assert [g.line for g in groups] == [1, 11]
    assert groups[0].meta == {"signature": "s"}
    reasons = {b.line: b.reason for b in report.bad}
    assert sorted(reasons) == [2, 6, 7, 8, 9, 10, 12, 13]
    assert "not valid JSON" in reasons[2]
    assert "candidates[0].reward must be a number" in reasons[6]
    assert "'prompt' must be a non-empty string" in reasons[7]
    assert "unknown keys ['candidate']" in reasons[8]
    assert "expected a JSON object" in reasons[9]
    assert "'meta' must be an object" in reasons[10]
    assert "must be a number" in reasons[12]  # booleans are not rewards
    assert "finite" in reasons[13]
    assert report.too_few_candidates == 1 and report.equal_rewards == 1
    assert report.groups == 4 and report.trainable == 2 and report.lines == 13


def test_fail_mode_stops_at_the_first_bad_line(mixed_file: Path):
    with pytest.raises(DatasetError, match=r"groups.jsonl:2: not valid JSON.*on_bad_line=skip"):
        load_groups(mixed_file, on_bad_line="fail")


def test_dataset_without_signal_is_an_error(tmp_path: Path):
    path = tmp_path / "flat.jsonl"
    path.write_text(_line(cands=(("a", 1.0), ("b", 1.0))) + "\n" + _line(cands=(("a", 1.0),)) + "\n")
    with pytest.raises(DatasetError, match="no trainable group.*1 with <2 candidates, 1 with all-equal"):
        load_groups(path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_groups(tmp_path / "missing.jsonl")


def test_parse_group_accepts_integers_and_missing_meta():
    g = parse_group(
        json.dumps({"prompt": "p", "candidates": [{"text": "a", "reward": 1}, {"text": "", "reward": -2}]}), 3
    )
    assert g.meta == {} and g.has_signal and g.candidates[1].reward == -2.0


def test_flatten_groups_assigns_group_ids(tmp_path: Path):
    path = tmp_path / "g.jsonl"
    path.write_text(_line("p1") + "\n" + _line("p2", cands=(("c", 0.0), ("d", 1.0), ("e", 3.0))) + "\n")
    groups, _ = load_groups(path)
    prompts, texts, rewards, gids = flatten_groups(groups)
    assert prompts == ["p1", "p1", "p2", "p2", "p2"]
    assert (
        texts == ["a", "b", "c", "d", "e"]
        and rewards == [1.0, 0.0, 0.0, 1.0, 3.0]
        and gids == [0, 0, 1, 1, 1]
    )


def test_sampler_covers_each_epoch_and_resumes_from_its_counter():
    s = GroupSampler(5, 3, seed=7)
    batches = [s.next_batch() for _ in range(5)]  # 15 items = 3 epochs
    flat = [i for b in batches for i in b]
    for epoch in range(3):
        assert sorted(flat[epoch * 5 : (epoch + 1) * 5]) == [0, 1, 2, 3, 4]
    resumed = GroupSampler(5, 3, seed=7, consumed=6)
    assert [resumed.next_batch() for _ in range(3)] == batches[2:]
