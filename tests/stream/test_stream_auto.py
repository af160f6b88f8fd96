"""`dspy-rl stream auto`: cycles per level, min_groups, guard skips, SIGKILL mid-cycle, HTTP control."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dspy_rl.stream.auto import FAILPOINT_ENV, AutoOptions, AutoRunner
from dspy_rl.stream.level_trainer import LevelTrainer, LevelTrainOptions
from dspy_rl.stream.synthetic import synthetic_spans
from dspy_rl.system.guard import GuardConfig
from dspy_rl.traces.mining import LEVELS, build_groups, group_lines
from dspy_rl.traces.store import TraceStore

REPO = Path(__file__).resolve().parents[2]
BATCH_GROUPS = 4


def _add(db: Path, traces: int, seed: int) -> list:
    spans = list(synthetic_spans(traces, seed=seed, start_ts=time.time() - 3600))
    with TraceStore(db) as store:
        store.insert_spans(spans)
    return spans


def _expected_groups(spans: list, trainable: bool = False) -> dict[str, int]:
    """Groups the miner finds in ``spans`` per level (with ``trainable``: those whose rewards differ)."""
    levels, _ = build_groups(s for s in spans if s.kind in ("prompt", "reward", "content"))
    return {lv: len(group_lines(levels[lv], 2, 16, trainable)[0]) for lv in LEVELS}


def _options(tmp_path: Path, **kw) -> AutoOptions:
    base = dict(store=str(tmp_path / "t.db"), state_dir=str(tmp_path / "auto"), levels=list(LEVELS),
                period_sec=0.0, hours=48.0, min_groups=1, max_cycles=None,
                train=LevelTrainOptions(batch_groups=BATCH_GROUPS, seed=1))  # fmt: skip
    return AutoOptions(**{**base, **kw})


def _records(state_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (state_dir / "cycles.jsonl").read_text().splitlines()]


def _progress(state_dir: Path, level: str) -> dict:
    return LevelTrainer(state_dir / f"ckpts_{level}", level, LevelTrainOptions()).progress


def test_cycles_train_each_level_on_new_groups_only_and_wait_below_min_groups(tmp_path: Path):
    db = tmp_path / "t.db"
    a = _add(db, 40, seed=1)
    runner = AutoRunner(_options(tmp_path))
    with TraceStore(db) as store:
        first = runner.run_cycle(store)
        assert first["status"] == "trained" and first["cycle"] == 0
        expected = _expected_groups(a)
        for level in LEVELS:
            info = first["levels"][level]
            assert info["status"] == "trained" and info["traces"] == 40 and info["groups"] == expected[level]
            trainable = _expected_groups(a, trainable=True)[level]
            assert info["metrics"]["steps"] == math.ceil(trainable / BATCH_GROUPS)
        # Nothing new: every level waits, nothing is retrained.
        second = runner.run_cycle(store)
        assert second["status"] == "waiting" and all(v["traces"] == 0 for v in second["levels"].values())
        # A few new traces, below min_groups for the global level: it waits, and gets them later with more.
        runner.opt.min_groups = 1000
        b = _add(db, 10, seed=2)
        third = runner.run_cycle(store)
        assert third["status"] == "waiting" and third["levels"]["global"]["traces"] == 10
        runner.opt.min_groups = 1
        c = _add(db, 10, seed=3)
        fourth = runner.run_cycle(store)
        assert fourth["levels"]["global"]["traces"] == 20
        assert fourth["levels"]["global"]["groups"] == _expected_groups(b + c)["global"]
    for level in LEVELS:
        trained = _expected_groups(a, True)[level] + _expected_groups(b + c, True)[level]
        assert _progress(tmp_path / "auto", level)["groups_trained"] == trained
    assert [r["cycle"] for r in _records(tmp_path / "auto")] == [0, 1, 2, 3]
    # Old group files are removed (keep_group_files=3).
    assert sorted({p.name.split(".")[0] for p in (tmp_path / "auto" / "groups").iterdir()}) == [
        "cycle_000001", "cycle_000002", "cycle_000003"]  # fmt: skip


def test_guard_refusal_skips_the_cycle_and_names_the_setting(tmp_path: Path):
    _add(tmp_path / "t.db", 10, seed=1)
    runner = AutoRunner(_options(tmp_path, guard=GuardConfig(min_ram_gb=1e6)))
    with TraceStore(tmp_path / "t.db") as store:
        record = runner.run_cycle(store)
    assert record["status"] == "skipped_guard" and "guard.min_ram_gb" in record["reason"]
    assert "ram_available" in record["reason"] and runner.state["cycle"] == 0
    assert not (tmp_path / "auto" / "ckpts_global").exists()


def _auto_cmd(tmp_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dspy_rl", "stream", "auto", f"store={tmp_path / 't.db'}",
            "--state-dir", str(tmp_path / "auto"), "--hierarchical", "--min-groups", "1", "--period-sec", "0",
            f"train.batch_groups={BATCH_GROUPS}", "train.seed=1", "mine.hours=48", *extra]  # fmt: skip


def _run(cmd: list[str], failpoint: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(FAILPOINT_ENV, None)
    if failpoint:
        env[FAILPOINT_ENV] = failpoint
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    "failpoint",
    [
        pytest.param("intent", marks=pytest.mark.slow),  # killed before any level trained
        "level:global",  # killed after one level's checkpoint, before the others and the commit
        pytest.param("committed", marks=pytest.mark.slow),  # killed between the state commit and the log line
    ],
)
def test_sigkill_mid_cycle_then_restart_neither_repeats_nor_loses_groups(tmp_path: Path, failpoint: str):
    db = tmp_path / "t.db"
    a = _add(db, 30, seed=1)
    killed = _run(_auto_cmd(tmp_path, "--max-cycles", "1"), failpoint=failpoint)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    state = json.loads((tmp_path / "auto" / "state.json").read_text())
    if failpoint == "committed":
        assert state["cycle"] == 1  # committed; only the log line was lost, and the restart restores it
    else:
        assert state["cycle"] == 0 and state["pending"]["cycle"] == 0
    done = _run(_auto_cmd(tmp_path, "--max-cycles", "1"))
    assert done.returncode == 0, done.stderr[-2000:]
    b = _add(db, 20, seed=2)
    again = _run(_auto_cmd(tmp_path, "--max-cycles", "2"))
    assert again.returncode == 0, again.stderr[-2000:]
    records = _records(tmp_path / "auto")
    assert [r["cycle"] for r in records] == [0, 1]  # each cycle recorded once
    ga, gb = _expected_groups(a, trainable=True), _expected_groups(b, trainable=True)
    for level in LEVELS:
        progress = _progress(tmp_path / "auto", level)
        # Every group of both batches trained exactly once per level.
        assert progress["groups_trained"] == ga[level] + gb[level], level
        assert progress["updates"] == math.ceil(ga[level] / BATCH_GROUPS) + math.ceil(
            gb[level] / BATCH_GROUPS
        )
        rows = [
            json.loads(x)
            for x in (tmp_path / "auto" / f"ckpts_{level}" / "metrics.jsonl").read_text().splitlines()
        ]
        assert [r["cycle"] for r in rows] == [0, 1] and "sys/cpu_percent" in rows[0]
    if failpoint == "level:global":
        assert records[0]["resumed"] and records[0]["levels"]["global"]["status"] == "done_before_restart"
        assert records[0]["levels"]["patch"]["status"] == "trained"


def _http(url: str, method: str = "GET", token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_control_start_stop_status_with_token(tmp_path: Path):
    _add(tmp_path / "t.db", 20, seed=1)
    env = {**os.environ, "PYTHONPATH": str(REPO), "DSPY_RL_AUTO_TOKEN": "s3cret"}
    proc = subprocess.Popen(_auto_cmd(tmp_path, "--paused", "--port", "0", "--period-sec", "3600"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        control = tmp_path / "auto" / "control.json"
        deadline = time.monotonic() + 120
        while not control.is_file():
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        info = json.loads(control.read_text())
        url = info["url"]
        assert url.startswith("http://127.0.0.1:") and info["token_required"]
        assert _http(f"{url}/status")[0] == 401
        assert _http(f"{url}/status", token="wrong")[0] == 401
        code, status = _http(f"{url}/status", token="s3cret")
        assert code == 200 and status["paused"] and not status["running"] and status["cycle"] == 0
        time.sleep(1.0)
        assert not (tmp_path / "auto" / "cycles.jsonl").exists()  # paused: no cycle ran
        code, status = _http(f"{url}/start", "POST", token="s3cret")
        assert code == 200 and status["running"]
        while _http(f"{url}/status", token="s3cret")[1]["cycle"] < 1:
            assert time.monotonic() < deadline + 120
            time.sleep(0.3)
        code, cycles = _http(f"{url}/cycles?limit=5", token="s3cret")
        assert code == 200 and cycles[0]["cycle"] == 0 and cycles[0]["status"] == "trained"
        code, status = _http(f"{url}/stop", "POST", token="s3cret")
        assert code == 200 and status["paused"] and not status["running"]
        assert _http(f"{url}/cycles?limit=x", token="s3cret")[0] == 400
        assert _http(f"{url}/nope", token="s3cret")[0] == 404
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
        assert not control.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_apply_policy_writes_the_workspace_policy_after_a_trained_cycle(tmp_path: Path):
    _add(tmp_path / "t.db", 20, seed=1)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    proc = _run(_auto_cmd(tmp_path, "--apply-policy", "--workspace", str(workspace), "--max-cycles", "1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = _records(tmp_path / "auto")[0]
    assert record["status"] == "trained" and record["apply_policy"]["returncode"] == 0, record.get(
        "apply_policy"
    )
    assert (workspace / ".dspy_policy.yaml").is_file()
    missing = _run(_auto_cmd(tmp_path, "--apply-policy", "--workspace", str(tmp_path / "nope")))
    assert missing.returncode == 2 and "auto.workspace" in missing.stderr.strip().splitlines()[-1]
    assert "Traceback" not in missing.stderr
