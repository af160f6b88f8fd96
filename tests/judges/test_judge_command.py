"""`dspy-rl judge`: in-process scoring and the agreement benchmark on the labelled set from the text task."""

from __future__ import annotations

import json

import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.grpo.tasks import load_task
from dspy_rl.judges.benchmark import auc, labelled_set


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_labelled_set_has_the_task_answer_and_two_wrong_commands() -> None:
    task = load_task("tool_commands")
    data = labelled_set(task.items, limit=20)
    answers = task.answers_by_prompt()
    for d in data:
        assert d.label == int(d.item.response == answers[d.item.query].answer)
    assert sum(d.label for d in data) == 20 and len(data) == 60
    assert auc([0.9, 0.1, 0.5], [1, 0, 0]) == 1.0 and auc([0.1, 0.9], [1, 0]) == 0.0


def test_judge_scores_in_process_and_benchmarks(capsys, tiny_checkpoint) -> None:
    assert (
        cli_main(["judge", "--query", "goal: show the readme . command:", "--response", "cat README.md"]) == 0
    )
    one = _json(capsys)
    assert one["judge"] == "rubric" and 0.0 <= one["score"] <= 1.0
    assert cli_main(["judge", "--model-type", "rubric", "--benchmark", "--limit", "30"]) == 0
    rubric = _json(capsys)
    assert rubric["items"] == 90 and rubric["prompts"] == 30 and 0.0 <= rubric["auc"] <= 1.0
    for kind in ("transformer", "ensemble"):
        argv = [
            "judge",
            "--model-type",
            kind,
            "--checkpoint",
            str(tiny_checkpoint),
            "--benchmark",
            "--limit",
            "8",
        ]
        assert cli_main(argv) == 0
        got = _json(capsys)
        assert got["judge"] == kind and got["items"] == 24 and 0.0 <= got["top1_agreement"] <= 1.0


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--model-type", "gpt"], "one of ensemble, rubric, embedding, transformer"),
        (["--model-type", "transformer", "--benchmark"], "checkpoint=None"),
        (["--benchmark", "--limit", "0"], "limit=0"),
        (["--benchmark", "--task", "nope"], "task=nope"),
        ([], "--query Q --response R"),
    ],
)
def test_bad_judge_input_is_one_line(argv: list[str], says: str, capsys) -> None:
    assert cli_main(["judge", *argv]) != 0
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err
