"""`dspy-rl rl report | recent | verify-storage` on real stores and real runs, including damaged ones."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dspy_rl.cli import main as cli_main
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.traces.store import TraceStore
from dspy_rl.utils.run_status import write_status


def _store(path: Path, n: int = 60) -> list:
    spans = list(synthetic_spans(n, seed=3))
    with TraceStore(path) as store:
        store.insert_spans(spans)
    return spans


def _grpo_run(run: Path, tmp_path: Path, steps: int = 3) -> None:
    data = tmp_path / "groups.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(
                {
                    "prompt": f"p{i}",
                    "candidates": [{"text": "ls", "reward": 1.0}, {"text": "cd", "reward": 0.0}],
                }
            )
            for i in range(4)
        )
        + "\n"
    )
    rc = cli_main(["grpo", "train", f"dataset={data}", f"steps={steps}", "model=bow", f"run_dir={run}",
                   "logging.log_every=1", "logging.progress_bar=false", "torch_threads=1", "logging.tensorboard=false"])  # fmt: skip
    assert rc == 0


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_recent_lists_latest_actions_newest_first(tmp_path: Path, capsys):
    db = tmp_path / "t.db"
    spans = _store(db)
    assert cli_main(["rl", "recent", "--limit", "7", "--json", f"store={db}"]) == 0
    actions = _json(capsys)
    expected = sorted(
        (s for s in spans if s.kind != "reward"), key=lambda s: (s.start_ts, s.span_id), reverse=True
    )
    assert [a["span_id"] for a in actions] == [s.span_id for s in expected[:7]]
    assert all(a["kind"] != "reward" and a["preview"] for a in actions)
    assert cli_main(["rl", "recent", "--db", str(db), "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3
    assert cli_main(["rl", "recent", f"store={tmp_path / 'nope.db'}"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert not (tmp_path / "nope.db").exists()  # inspection never creates a store
    assert cli_main(["rl", "recent", "--limit", "0", f"store={db}"]) == 2


def test_report_shows_runs_status_best_success_and_store(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    _grpo_run(runs / "grpo" / "a", tmp_path)
    capsys.readouterr()
    # A run whose process died: status 'running' with a pid that no longer exists.
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    died = runs / "train" / "b"
    died.mkdir(parents=True)
    (died / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"env_steps": 100 * i, "wall_s": 0.5 * i, "success_rate": s}) + "\n"
            for i, s in [(1, 0.2), (2, 0.6), (3, 0.4)]
        )
        + "{broken\n"  # fmt: skip
    )
    write_status(died, "running", kind="train")
    status = json.loads((died / "status.json").read_text())
    status["pid"] = int(dead.stdout)
    (died / "status.json").write_text(json.dumps(status))
    db = tmp_path / "t.db"
    _store(db)
    assert cli_main(["rl", "report", "--json", f"runs={runs}", f"store={db}"]) == 0
    out = _json(capsys)
    by = {Path(r["run_dir"]).name: r for r in out["runs"]}
    assert by["a"]["kind"] == "grpo" and by["a"]["status"] == "completed" and by["a"]["rows"] == 3
    assert by["a"]["best_success_key"] == "reward_mean" and "loss" in by["a"]["last"]
    assert by["b"]["status"] == "died" and by["b"]["best_success"] == 0.6 and by["b"]["bad_lines"] == 1
    assert by["b"]["env_steps_per_s"] == pytest.approx(200.0) and by["b"]["last"]["success_rate"] == 0.4
    assert out["store"]["traces"] == 60 and out["store"]["spans"] > 60
    assert cli_main(["rl", "report", f"runs={runs}", f"store={db}"]) == 0
    text = capsys.readouterr().out
    assert "died" in text and "best success 0.600 (success_rate)" in text


def test_verify_storage_passes_on_sound_storage(tmp_path: Path, capsys):
    runs = tmp_path / "runs"
    _grpo_run(runs / "g", tmp_path)
    capsys.readouterr()
    db = tmp_path / "t.db"
    spans = _store(db)
    assert cli_main(["rl", "verify-storage", "--json", f"store={db}", f"runs={runs}"]) == 0
    out = _json(capsys)
    assert out["ok"] and out["stats"]["checkpoints"] >= 1 and out["stats"]["spans"] == len(spans)
    assert {"schema", "integrity_check", "orphans", "duplicate_event_ids", "checkpoints"} <= set(
        out["checks_run"]
    )


def test_verify_storage_names_each_problem(tmp_path: Path, capsys):
    db = tmp_path / "t.db"
    spans = _store(db)
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT * FROM spans LIMIT 1").fetchone()
    conn.execute(
        "INSERT INTO spans VALUES (?, 'ghost-trace', ?, ?, ?, ?, ?, ?, ?, ?, ?)", ("orphan-1", *row[2:])
    )
    conn.execute("INSERT INTO traces (trace_id, agent_id, started_at) VALUES ('empty-trace', 'a', 1.0e9)")
    rewarded = next(s.trace_id for s in spans if s.kind == "reward")
    conn.execute("UPDATE traces SET total_reward = 999 WHERE trace_id = ?", (rewarded,))
    conn.commit()
    conn.close()
    runs = tmp_path / "runs"
    ck = runs / "r" / "checkpoints"
    ck.mkdir(parents=True)
    (ck / "ckpt_0000001.pt").write_bytes(b"not a checkpoint")
    (ck / "latest").write_text("ckpt_0000009.pt")
    (runs / "r" / "metrics.jsonl").write_text("")
    assert cli_main(["rl", "verify-storage", f"store={db}", f"runs={runs}"]) == 1
    text = capsys.readouterr().out
    assert "PROBLEM orphans:" in text and "ghost-trace" in text
    assert "empty-trace" in text and "traces without spans" in text
    assert "PROBLEM trace_totals:" in text and rewarded in text
    assert "ckpt_0000001.pt: cannot be read" in text
    assert "names 'ckpt_0000009.pt', which does not exist" in text
    assert text.strip().splitlines()[-1] == "5 problem(s)"


def test_verify_storage_finds_duplicate_event_ids_and_a_wrong_schema(tmp_path: Path, capsys):
    db = tmp_path / "t.db"
    _store(db)
    conn = sqlite3.connect(db)
    # A hand-made copy of the spans table without its primary key, holding one event twice.
    conn.executescript(
        "CREATE TABLE spans2 AS SELECT * FROM spans; DROP TABLE spans; ALTER TABLE spans2 RENAME TO spans;"
        "INSERT INTO spans SELECT * FROM spans LIMIT 1;"
    )
    conn.close()
    assert cli_main(["rl", "verify-storage", "--json", f"store={db}", f"runs={tmp_path / 'none'}"]) == 1
    problems = _json(capsys)["problems"]
    checks = {p["check"] for p in problems}
    assert {"schema", "duplicate_event_ids"} <= checks
    dup = next(p for p in problems if p["check"] == "duplicate_event_ids")
    assert "1 event ids stored more than once" in dup["what"]


def test_verify_storage_reports_a_corrupt_file(tmp_path: Path, capsys):
    db = tmp_path / "t.db"
    _store(db, 400)
    bad = tmp_path / "bad.db"
    shutil.copy(db, bad)
    data = bytearray(bad.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[2 * page : 5 * page] = bytes([0x5A]) * (3 * page)
    bad.write_bytes(bytes(data))
    assert cli_main(["rl", "verify-storage", "--json", f"store={bad}", f"runs={tmp_path / 'none'}"]) == 1
    problems = _json(capsys)["problems"]
    assert problems and all(p["where"].startswith(str(bad)) for p in problems)
    (tmp_path / "text.db").write_text("hello")
    assert (
        cli_main(["rl", "verify-storage", f"store={tmp_path / 'text.db'}", f"runs={tmp_path / 'none'}"]) == 1
    )
    assert "not a readable SQLite database" in capsys.readouterr().out
