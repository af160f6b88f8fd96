"""The dashboard's JSON API over real run directories (a train run, a corrupt copy, sweeps, a trace store),
served by `dspy-rl dashboard` on a loopback port: listings, metrics, sweeps, 404s, path traversal, auth, /metrics."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .conftest import BAD_EVENTS, BAD_METRICS_LINES, ENV, Dashboard, ingest_counts, sweep_results


def get(d: Dashboard, path: str, **kw) -> httpx.Response:
    return httpx.get(d.url + path, timeout=60, **kw)


def raw_get(d: Dashboard, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as given (no client-side normalization of '..' or %2e)."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_runs_list_status_and_summaries(dashboard, runs_dir) -> None:
    d = get(dashboard, "api/rl/sessions").json()
    by_id = {r["id"]: r for r in d["sessions"]}
    tiny = by_id["train/tiny"]
    assert tiny["status"] == "finished" and tiny["algorithm"] == "ppo" and tiny["env"].startswith("default")
    assert tiny["steps"] == tiny["budget"] == 8192 and tiny["progress"] == 1.0
    assert tiny["env_steps_per_s"] > 0 and 0 <= tiny["success_rate"] <= 1
    assert tiny["eval_success_rate"] is not None  # the final evaluation row joins the summary
    assert d["counts"]["finished"] == d["total"] == 2
    assert get(dashboard, "api/rl/sessions?status=live").json()["sessions"] == []
    assert [r["id"] for r in get(dashboard, "api/rl/sessions?q=corrupt").json()["sessions"]] == [
        "train/corrupt"
    ]
    bad = get(dashboard, "api/rl/sessions?status=bogus")
    assert bad.status_code == 422 and "bogus" in bad.text


def test_run_detail_and_metrics_with_corrupt_lines_counted(dashboard, runs_dir) -> None:
    detail = get(dashboard, "api/rl/sessions/train/tiny").json()
    assert "total_env_steps: 8192" in detail["config_text"]
    assert [c["name"] for c in detail["checkpoints"]] == ["ckpt_0000002.pt", "ckpt_0000004.pt"]
    ckpt = get(dashboard, "files/" + detail["checkpoints"][0]["file"])
    assert ckpt.status_code == 200 and len(ckpt.content) == detail["checkpoints"][0]["bytes"]
    rows_on_disk = (runs_dir / "train" / "tiny" / "metrics.jsonl").read_text().splitlines()
    m = get(dashboard, "api/rl/sessions/train/tiny/metrics").json()
    assert len(m["rows"]) == len(rows_on_disk) and m["corrupt_lines"] == 0 and m["next"] == len(rows_on_disk)
    assert {"success_rate", "episode_return", "sample_s", "learn_s", "A/pg_loss"} <= set(m["keys"])
    assert "A/pg_loss" in m["loss_keys"] and any("wait_s" in r for r in m["rows"])
    tail = get(dashboard, f"api/rl/sessions/train/tiny/metrics?after={len(rows_on_disk) - 1}").json()
    assert len(tail["rows"]) == 1 and tail["rows"][0]["env_steps"] == m["rows"][-1]["env_steps"]
    c = get(dashboard, "api/rl/sessions/train/corrupt/metrics").json()
    assert c["corrupt_lines"] == len(BAD_METRICS_LINES) and len(c["rows"]) == len(rows_on_disk)


def test_unknown_ids_are_404_naming_the_id(dashboard) -> None:
    for path, name in (
        ("api/rl/sessions/train/nope", "train/nope"),
        ("api/rl/sessions/train/nope/metrics", "train/nope"),
        ("api/rl/sweeps/sweep/nope", "sweep/nope"),
        ("api/rl/sessions/sweep/like", "sweep/like"),  # a sweep is not a run
    ):
        r = get(dashboard, path)
        assert r.status_code == 404 and name in r.json()["detail"], (path, r.text)


def test_never_serves_files_outside_the_runs_dir(dashboard, runs_dir, tmp_path) -> None:
    secret = runs_dir.parent / "secret.txt"
    secret.write_text("outside")
    (runs_dir / "link").symlink_to(secret)
    (runs_dir / "train" / "tiny" / "escape").symlink_to(runs_dir.parent)
    try:
        assert raw_get(dashboard, "/files/train/tiny/config.yaml")[0] == 200
        for path in (
            "/files/../secret.txt",
            "/files/%2e%2e/secret.txt",
            "/files/..%2fsecret.txt",
            "/files/train/../../secret.txt",
            "/files/train/tiny/escape/secret.txt",
            "/files/link",
            "/files//etc/passwd",
            "/files/%2Fetc%2Fpasswd",
            "/api/rl/sessions/..%2F..%2F/metrics",
            "/api/rl/sessions/%2e%2e/metrics",
            "/api/rl/sweeps/..%2f..%2ftmp",
        ):
            status, body = raw_get(dashboard, path)
            assert status in (400, 404), (path, status, body[:200])
            assert b"outside" not in body and b"root:" not in body, path
    finally:
        (runs_dir / "link").unlink()
        (runs_dir / "train" / "tiny" / "escape").unlink()


def check_sweep(s: dict, results: dict) -> dict:
    """The sweep page's data agrees with the sweep's own results.json; returns trials by id."""
    rows = {r["trial_id"]: r for r in results["rows"]}
    table = {t["trial_id"]: t for t in s["trials_table"]}
    assert set(table) == set(rows) and s["trials"] == len(rows) and len(s["history"]) == len(rows)
    for tid, r in rows.items():
        assert (table[tid]["status"] == "error") == (r["status"] == "error"), tid
        if r["score"] is not None:
            assert table[tid]["score"] == pytest.approx(r["score"]) and table[tid]["cost"] == pytest.approx(
                r["cost"]
            )
    assert s["errors"] == sum(r["status"] == "error" for r in rows.values())
    best = results["best"]
    assert s["best_score"] == pytest.approx(best["score"]) and s["best_cost"] == pytest.approx(best["cost"])
    # best-so-far never gets worse and ends at the best score
    bests = [h["best"] for h in s["history"] if h["best"] is not None]
    assert bests == sorted(bests) and bests[-1] == pytest.approx(best["score"])
    # the Pareto front: no scored trial has both a higher score and a lower cost than a front member
    scored = [t for t in table.values() if t["score"] is not None]
    assert s["pareto"] and all(table[t]["pareto"] for t in s["pareto"])
    for tid in s["pareto"]:
        f = table[tid]
        assert not any(o["score"] >= f["score"] and o["cost"] < f["cost"] for o in scored)
    for t in scored:  # and every other trial is beaten by some front member
        if not t["pareto"]:
            assert any(table[f]["score"] >= t["score"] and table[f]["cost"] <= t["cost"] for f in s["pareto"])
    imp = {p["name"]: p for p in s["importance"]}
    assert set(imp) == set(s["parameters"])
    assert sum(p["share"] for p in imp.values()) == pytest.approx(1.0)
    return table


def test_sweep_trials_history_pareto_importance(dashboard, runs_dir) -> None:
    listing = get(dashboard, "api/rl/sweeps").json()["sweeps"]
    assert [s["id"] for s in listing] == ["sweep/like"]
    s = get(dashboard, "api/rl/sweeps/sweep/like").json()
    assert s["status"] == "finished" and s["searcher"] == "protein" and s["metric"] == "score"
    table = check_sweep(s, sweep_results(runs_dir / "sweep" / "like"))
    assert set(s["parameters"]) == {"lr", "gamma", "batch", "epochs", "activation", "steps"}
    kinds = {p["name"]: p["kind"] for p in s["importance"]}
    assert kinds["activation"] == "correlation ratio" and kinds["lr"] == "spearman"
    assert all(t["train_run"] is None for t in table.values())  # synthetic trials train nothing
    assert s["images"] == ["sweep/like/pareto.png"]
    assert get(dashboard, "files/sweep/like/pareto.png").headers["content-type"] == "image/png"


@pytest.mark.slow
def test_ppo_sweep_links_each_trial_to_its_training_run(ppo_sweep_dir) -> None:
    d = Dashboard(ppo_sweep_dir)
    try:
        s = get(d, "api/rl/sweeps/sweep/tiny").json()
        assert s["metric"] == "eval_success_rate" and s["cost"] == "env_steps"
        table = check_sweep(s, sweep_results(ppo_sweep_dir / "sweep" / "tiny"))
        assert set(s["parameters"]) == {"algo.lr", "algo.ent_coef", "total_env_steps"}
        runs = get(d, "api/rl/sessions").json()["sessions"]
        linked = [t for t in table.values() if t["train_run"]]
        assert linked and len(runs) == len(linked)
        assert all(r["sweep"] == "sweep/tiny" and r["status"] == "finished" for r in runs)
        for t in linked:  # each trial's own training run: its final eval is the trial's score
            run = get(d, "api/rl/sessions/sweep/tiny/" + t["train_run"]).json()
            assert run["eval_success_rate"] == pytest.approx(t["score"]) and run["steps"] == t["cost"]
    finally:
        d.close()


def test_status_performance_and_openapi(dashboard) -> None:
    st = get(dashboard, "api/rl/status").json()
    assert st["counts"] == {"live": 0, "finished": 2, "failed": 0} and st["sweeps"] == 1
    assert st["machine"]["ram_total_gb"] > 0 and st["guard"]["checks"]
    assert st["auto"]["available"] is False and "auto mode not available" in st["auto"]["reason"]
    summary = get(dashboard, "api/rl/performance/summary").json()
    assert summary["overall"]["runs"] == 2 and summary["overall"]["env_steps"] == 2 * 8192
    assert summary["by_algorithm_env"][0]["group"].startswith("ppo / ")
    trends = get(dashboard, "api/rl/performance/trends").json()
    assert len(trends["points"]) == 2
    starts = [p["started"] for p in trends["points"]]
    assert starts == sorted(starts)
    paths = get(dashboard, "openapi.json").json()["paths"]
    for p in (
        "/api/rl/status",
        "/api/rl/sessions",
        "/api/rl/sessions/{run_id}/metrics",
        "/api/rl/sweeps",
        "/api/rl/performance/summary",
        "/api/rl/performance/trends",
        "/api/system/guard",
        "/api/grpo/auto/start",
        "/api/grpo/auto/stop",
    ):
        assert p in paths, p
    assert "post" in paths["/api/system/guard"] and "post" in paths["/api/grpo/auto/start"]


def test_trace_store_summary_with_dead_letters(dashboard, runs_dir) -> None:
    t = get(dashboard, "api/traces/summary").json()
    store = t["store"]
    assert (
        store["spans"] > 0 and store["traces"] > 0 and sum(store["spans_by_kind"].values()) == store["spans"]
    )
    assert store["events_per_s"] and len(store["recent"]) == 25
    ingest = ingest_counts(runs_dir)  # what `dspy-rl stream ingest` reported
    assert store["spans"] == ingest["stored"]
    assert t["dlq"]["dlq"] == ingest["dlq"] >= len(BAD_EVENTS)
    assert t["dlq"]["dlq_reasons"] == ingest["dlq_reasons"]


def test_guard_check_with_thresholds(dashboard) -> None:
    ok = httpx.post(dashboard.url + "api/system/guard", json={}, timeout=60).json()
    assert {c["name"] for c in ok["checks"]} == {"disk_free", "ram_available", "vram_free"}
    refused = httpx.post(dashboard.url + "api/system/guard", json={"min_free_gb": 1e9}, timeout=60).json()
    assert refused["ok"] is False
    (disk,) = [c for c in refused["checks"] if c["name"] == "disk_free"]
    assert disk["ok"] is False and disk["setting"] == "guard.min_free_gb"
    bad = httpx.post(dashboard.url + "api/system/guard", json={"min_ram_gb": -1}, timeout=60)
    assert bad.status_code == 422 and "min_ram_gb" in bad.text


def test_auto_mode_unavailable_is_503_with_the_reason(dashboard) -> None:
    for method, path in (("GET", "status"), ("POST", "start"), ("POST", "stop")):
        r = httpx.request(method, dashboard.url + "api/grpo/auto/" + path, timeout=60)
        assert r.status_code == 503 and "auto mode not available" in r.json()["detail"], (path, r.text)


def test_prometheus_metrics(dashboard) -> None:
    r = get(dashboard, "metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    runs = {s.labels["status"]: s.value for s in families["dspy_rl_runs"].samples}
    assert runs == {"live": 0.0, "finished": 2.0, "failed": 0.0}
    assert families["dspy_rl_machine_ram_total_gb"].samples[0].value > 0


def test_token_guards_every_post_endpoint(runs_dir) -> None:
    d = Dashboard(runs_dir, "auth_token_env=DASH_TEST_TOKEN", env={"DASH_TEST_TOKEN": "s3cret"})
    try:
        for path in ("api/system/guard", "api/grpo/auto/start", "api/grpo/auto/stop"):
            assert httpx.post(d.url + path, timeout=60).status_code == 401, path
            wrong = httpx.post(d.url + path, headers={"Authorization": "Bearer nope"}, timeout=60)
            assert wrong.status_code == 401 and "bearer token" in wrong.json()["detail"]
        good = httpx.post(d.url + "api/system/guard", headers={"Authorization": "Bearer s3cret"}, timeout=60)
        assert good.status_code == 200 and good.json()["checks"]
        auto = httpx.post(
            d.url + "api/grpo/auto/start", headers={"Authorization": "Bearer s3cret"}, timeout=60
        )
        assert auto.status_code == 503  # past the token, auto mode itself is not there
        assert httpx.get(d.url + "api/rl/sessions", timeout=60).status_code == 200  # reads need no token
    finally:
        d.close()


def test_thousands_of_runs_are_paginated(runs_dir, tmp_path) -> None:
    many = tmp_path / "many"
    src = runs_dir / "train" / "tiny"
    for i in range(2000):
        dst = many / f"r{i:04d}"
        dst.mkdir(parents=True)
        shutil.copy(src / "metrics.jsonl", dst / "metrics.jsonl")
        shutil.copy(src / "config.yaml", dst / "config.yaml")
    d = Dashboard(many, "page_size=100")
    try:
        first = get(d, "api/rl/sessions").json()
        assert first["total"] == 2000 and first["pages"] == 20 and len(first["sessions"]) == 100
        last = get(d, "api/rl/sessions?page=20").json()
        assert len(last["sessions"]) == 100
        ids = {r["id"] for p in (1, 2, 20) for r in get(d, f"api/rl/sessions?page={p}").json()["sessions"]}
        assert len(ids) == 300  # pages do not overlap
        assert get(d, "api/rl/sessions?page=21").json()["sessions"] == []
        assert get(d, "api/rl/sessions?page_size=5000").status_code == 422
    finally:
        d.close()


@pytest.mark.parametrize(
    "args, match",
    [
        (["runs_dir=/nonexistent/runs"], "runs_dir='/nonexistent/runs' is not a directory"),
        (["port=8265"], "port=8265 is not allowed"),
        (["page_size=0"], "page_size=0 is not allowed"),
        (["store=/nonexistent.db"], "store='/nonexistent.db' does not exist"),
        (["auth_token_env=DASH_UNSET_TOKEN_VAR"], "that environment variable is empty"),
        (["bogus"], "unexpected argument 'bogus'"),
    ],
)
def test_cli_bad_input_is_one_line(args, match, runs_dir) -> None:
    argv = args if args[0].startswith("runs_dir") else [f"runs_dir={runs_dir}", *args]
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_rl", "dashboard", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and match in err[0] and "Traceback" not in proc.stderr, proc.stderr


def test_cli_port_in_use_is_one_line(dashboard, runs_dir) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dspy_rl", "dashboard", f"runs_dir={runs_dir}", f"port={dashboard.port}"],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{dashboard.port}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_index_page_and_assets_are_local(dashboard) -> None:
    html = get(dashboard, "").text
    assert "static/vendor/uPlot.iife.min.js" in html and "http://" not in html and "https://" not in html
    js = get(dashboard, "static/vendor/uPlot.iife.min.js")
    assert js.status_code == 200 and js.text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    vendor = Path(__file__).resolve().parents[2] / "dspy_rl" / "dashboard" / "static" / "vendor"
    assert (vendor / "uPlot.LICENSE").read_text().startswith("The MIT License")
    for f in ("static/app.js", "static/style.css", "static/vendor/uPlot.min.css", "favicon.ico"):
        assert get(dashboard, f).status_code == 200, f
