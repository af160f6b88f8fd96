"""One line per bad input, before Ray or any work starts: an unknown env.suite, a trace store that is not SQLite
(`grpo mine`, `stream ingest`), a missing stream.events_file, a too-small ingest.session_timeout_ms, and mistyped
values of every command; dead-letter reasons are counted by kind, not by message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.stream.bus import FileBus
from dspy_rl.stream.file_source import JsonlSource
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces.spans import MALFORMED_KINDS
from dspy_rl.traces.store import TraceStore


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if any command reaches Ray."""
    import ray

    def refuse(*_a, **_k):
        raise AssertionError("Ray was started for a bad input")

    monkeypatch.setattr(ray, "init", refuse)


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str], rc: int = 2) -> str:
    assert cli_main(argv) == rc
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def not_sqlite(tmp_path: Path) -> Path:
    p = tmp_path / "traces.db"
    p.write_text("this is a text file, not a database\n")
    return p


def test_unknown_suite_fails_before_ray(no_ray, capsys) -> None:
    line = _one_line(capsys, ["train", "env.suite=nosuch", "runtime.num_env_runners=1"])
    assert (
        "env.suite='nosuch' is not allowed" in line
        and "available suites: default, easy, expert, hard" in line
    )


def test_grpo_mine_on_a_store_that_is_not_sqlite(no_ray, capsys, not_sqlite: Path, tmp_path: Path) -> None:
    line = _one_line(capsys, ["grpo", "mine", f"db={not_sqlite}", f"out={tmp_path / 'g.jsonl'}"])
    assert f"db='{not_sqlite}' is not an SQLite database" in line


@pytest.mark.parametrize("where", ["proc", "directory"])
def test_stream_ingest_on_a_store_sqlite_cannot_open(no_ray, capsys, tmp_path: Path, where: str) -> None:
    store = Path("/proc/dspy-rl-no-such.db") if where == "proc" else tmp_path
    events = tmp_path / "e.jsonl"
    events.write_text("{}\n")
    line = _one_line(capsys, ["stream", "ingest", f"store={store}", f"stream.events_file={events}"])
    assert str(store) in line and ("writable SQLite file" in line or "is a directory" in line)


def test_stream_ingest_on_a_store_that_is_not_sqlite(no_ray, capsys, not_sqlite: Path) -> None:
    line = _one_line(capsys, ["stream", "ingest", f"store={not_sqlite}"])
    assert f"store='{not_sqlite}' is not an SQLite database" in line
    assert not_sqlite.read_text().startswith("this is a text file")  # untouched


def test_missing_events_file(no_ray, capsys, tmp_path: Path) -> None:
    line = _one_line(
        capsys,
        ["stream", "ingest", f"store={tmp_path / 't.db'}", f"stream.events_file={tmp_path / 'no.jsonl'}"],
    )
    assert "stream.events_file=" in line and "is not a file" in line
    assert not (tmp_path / "t.db").exists()  # nothing was created


def test_too_small_session_timeout(no_ray, capsys, tmp_path: Path) -> None:
    line = _one_line(
        capsys,
        ["stream", "ingest", "stream=kafka", f"store={tmp_path / 't.db'}", "ingest.session_timeout_ms=10"],
    )
    assert "ingest.session_timeout_ms=10 is not allowed; expected an int >= 6000" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "algo.lr=fast"], "algo.lr='fast' is not allowed; expected a number"),
        (["train", "env.num_envs=1.5"], "env.num_envs=1.5 is not allowed; expected an integer"),
        (["train", "logging.plot=maybe"], "logging.plot='maybe' is not allowed; expected true or false"),
        (
            ["train", "runtime.num_cpus=[1]"],
            "runtime.num_cpus=[1] is not allowed; expected an integer or null",
        ),
        (["train", "algo.nope=1"], "unknown setting 'algo.nope'; the settings there are clip"),
        (["train", "algo=sac"], "algo=sac is not allowed; expected one of gigpo, grpo, ppo"),
        (["train", "algo.ent_coef=inf"], "algo.ent_coef=inf is not allowed; expected a finite number"),
        (["train", "env.num_envs=100000000000"], "env.num_envs=100000000000 is not allowed"),
        (["eval", "episodes=many"], "episodes='many' is not allowed; expected an integer"),
        (["serve", "judges", "port=http"], "port='http' is not allowed; expected an integer"),
        (["serve", "judges", "deadline_s=inf"], "deadline_s=inf is not allowed; expected a finite number"),
        (["grpo", "train", "lr=abc"], "lr='abc' is not allowed; expected a number"),
        (["stream", "ingest", "ingest.batch_size=big"], "ingest.batch_size='big' is not allowed"),
        (["sweep", "num_cpus=x"], "num_cpus='x' is not allowed; expected an integer or null"),
    ],
)
def test_mistyped_values_name_the_key_the_value_and_what_is_allowed(no_ray, capsys, argv, expected) -> None:
    line = _one_line(capsys, argv)
    assert expected in line, line


def test_dead_letter_reasons_are_counted_by_kind(tmp_path: Path) -> None:
    """300 malformed lines with 300 different messages give a handful of metric keys, all known kinds."""
    good = [s.to_json_bytes().decode() for s in synthetic_spans(5, seed=1)]
    base = json.loads(good[0])
    bad = []
    for i in range(100):
        bad.append(json.dumps({**base, "ts": 10.0 + i}))  # out of range, a different value each time
        bad.append(json.dumps({**base, "kind": f"kind-{i}"}))
        bad.append("{" + "x" * i)  # invalid JSON at a different column each time
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(good + bad) + "\n")
    store = TraceStore(tmp_path / "t.db")
    source = JsonlSource(store, events, dlq=FileBus(tmp_path / "bus"), batch_size=50)
    source.ingest()
    reasons = source.metrics.dlq_reasons
    assert sum(reasons.values()) == 300 and source.metrics.dlq == 300
    assert set(reasons) <= MALFORMED_KINDS and len(reasons) <= 4, reasons
    assert reasons["bad_ts"] == 100 and reasons["invalid_json"] == 100
    letters = [json.loads(x) for x in (tmp_path / "bus" / "agent.dlq.jsonl").read_text().splitlines()]
    assert len(letters) == 300 and {x["kind"] for x in letters} == set(reasons)
    store.close()
