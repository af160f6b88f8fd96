"""Every dashboard page in headless Chromium over real runs: rendered content, no console errors, screenshots.

Screenshots go to $DSPY_RL_SCREENSHOT_DIR (default: a pytest temp dir, printed). Skipped only where Debian's
chromium is not installed and cannot be (`make setup` installs it with apt-get where it can).
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

from .cdp import Browser, find_chromium
from .conftest import BAD_METRICS_LINES, Dashboard, LiveRun, ingest_counts, sweep_results

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; `make setup` does it as root)",
)


@pytest.fixture(scope="module")
def shots(private_tmp) -> Path:
    out = Path(os.environ.get("DSPY_RL_SCREENSHOT_DIR") or private_tmp / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots in {out}")
    return out


@pytest.fixture(scope="module")
def browser():
    b = Browser(CHROMIUM)
    yield b
    b.close()


def run_hash(run_id: str) -> str:
    return "#/run/" + urllib.parse.quote(run_id, safe="")


def open_page(browser, dashboard, fragment: str, ready: str):
    page = browser.new_page()
    page.goto(dashboard.url + fragment)
    page.wait_for(f"document.body.dataset.ready === {ready!r}")
    page.wait_for("document.readyState === 'complete'")
    browser.pump(0.5)  # late errors (images, charts) arrive
    return page


def test_runs_page(browser, dashboard, shots) -> None:
    page = open_page(browser, dashboard, "#/runs", "runs")
    rows = page.evaluate(
        "[...document.querySelectorAll('[data-testid=runs-table] tbody tr')].map(r => r.innerText)"
    )
    assert len(rows) == 2
    tiny = next(r for r in rows if r.startswith("train/tiny"))
    assert "finished" in tiny and "ppo" in tiny and "8,192 / 8,192" in tiny
    assert "all (2)" in page.text() and "finished (2)" in page.text() and "page 1 of 1" in page.text()
    page.screenshot(shots / "runs.png")
    assert page.errors() == []
    # the status filter shows no live runs
    page.goto(dashboard.url + "#/runs?status=live")
    page.wait_for("document.body.dataset.ready === 'runs'")
    assert "no runs under this filter" in page.text()
    assert page.errors() == []


def test_run_page_curves_config_checkpoints(browser, dashboard, shots) -> None:
    page = open_page(browser, dashboard, run_hash("train/tiny"), "run")
    text = page.text()
    for title in (
        "Success rate",
        "Episode return",
        "Losses",
        "Env steps/s",
        "sample / learn / wait",
        "CPU / RAM / GPU use",
    ):
        assert title in text, title
    # every chart drew its points on a canvas (uPlot), none is empty
    charts = page.evaluate(
        "[...document.querySelectorAll('.chart')].map(c => [c.querySelector('h3').innerText, "
        "!!c.querySelector('canvas'), c.dataset.points || null])"
    )
    assert len(charts) >= 6
    assert all(has_canvas for _, has_canvas, _ in charts), charts
    assert "finished" in text and "total_env_steps: 8192" in text
    assert page.evaluate("document.querySelectorAll('[data-testid=checkpoints] tbody tr').length") == 2
    assert (
        page.evaluate("document.querySelector('img.plot').naturalWidth") > 100
    )  # learning_curve.png via /files/
    assert page.evaluate("document.querySelector('[data-testid=corrupt]')") is None
    page.screenshot(shots / "run.png")
    assert page.errors() == []


def test_run_page_counts_corrupt_lines(browser, dashboard, shots) -> None:
    page = open_page(browser, dashboard, run_hash("train/corrupt"), "run")
    warn = page.evaluate("document.querySelector('[data-testid=corrupt]').innerText")
    assert warn == f"{len(BAD_METRICS_LINES)} corrupt lines in metrics.jsonl skipped"
    page.screenshot(shots / "run_corrupt.png")
    assert page.errors() == []


def test_unknown_run_page_names_the_id(browser, dashboard) -> None:
    page = browser.new_page()
    page.goto(dashboard.url + run_hash("train/missing"))
    page.wait_for("document.body.dataset.ready === 'error'")
    assert "HTTP 404: no run 'train/missing'" in page.text()
    # the only errors are the browser's own notes of the 404 responses
    assert page.errors() and all("404" in e for e in page.errors()), page.errors()


def check_sweep_page(browser, dashboard, shots, sweep_id: str, name: str) -> None:
    page = open_page(browser, dashboard, "#/sweeps", "sweeps")
    rows = page.evaluate(
        "[...document.querySelectorAll('[data-testid=sweeps-table] tbody tr')].map(r => r.innerText)"
    )
    results = sweep_results(dashboard.runs / sweep_id)
    n = len(results["rows"])
    (row,) = [r for r in rows if r.startswith(sweep_id)]
    assert "protein" in row and "finished" in row and f"{n} / {n}" in row
    page.screenshot(shots / f"sweeps_{name}.png")
    assert page.errors() == []
    page = open_page(browser, dashboard, "#/sweep/" + urllib.parse.quote(sweep_id, safe=""), "sweep")
    text = page.text()
    assert "Optimization history" in text and "(Pareto front)" in text and "Parameter importance" in text
    assert page.evaluate("document.querySelectorAll('[data-testid=trials-table] tbody tr').length") == n
    assert page.evaluate("document.querySelectorAll('[data-testid=trials-table] tr.pareto').length") >= 1
    errors = sum(r["status"] == "error" for r in results["rows"])
    assert (
        page.evaluate("document.querySelectorAll('[data-testid=trials-table] .pill.error').length") == errors
    )
    assert page.evaluate("document.querySelectorAll('.chart canvas').length") == 2
    page.screenshot(shots / f"sweep_{name}.png")
    assert page.errors() == []


def test_sweep_pages(browser, dashboard, shots) -> None:
    check_sweep_page(browser, dashboard, shots, "sweep/like", "synthetic")


@pytest.mark.slow
def test_ppo_sweep_page_links_trial_runs(browser, ppo_sweep_dir, shots) -> None:
    d = Dashboard(ppo_sweep_dir, "poll_ms=300")
    try:
        check_sweep_page(browser, d, shots, "sweep/tiny", "ppo")
        page = open_page(browser, d, "#/sweep/" + urllib.parse.quote("sweep/tiny", safe=""), "sweep")
        page.evaluate("document.querySelector('[data-testid=trials-table] tbody a').click()")
        page.wait_for("document.body.dataset.ready === 'run'")
        assert "eval success" in page.text().lower() and "finished" in page.text()
        assert page.errors() == []
    finally:
        d.close()


def test_performance_traces_system_auto_pages(browser, dashboard, runs_dir, shots) -> None:
    page = open_page(browser, dashboard, "#/performance", "performance")
    assert "ppo / default" in page.text() and "Success rate per run" in page.text()
    page.screenshot(shots / "performance.png")
    assert page.errors() == []

    page = open_page(browser, dashboard, "#/traces", "traces")
    assert int(page.evaluate("document.querySelector('[data-testid=spans]').innerText").replace(",", "")) > 0
    assert page.evaluate("document.querySelector('[data-testid=dlq-file]').innerText") == str(
        ingest_counts(runs_dir)["dlq"]
    )
    assert page.evaluate("document.querySelectorAll('[data-testid=recent] tbody tr').length") == 25
    page.screenshot(shots / "traces.png")
    assert page.errors() == []

    page = open_page(browser, dashboard, "#/system", "system")
    assert page.evaluate("document.querySelector('[data-testid=guard-ok]').innerText") == "room for a run"
    assert page.evaluate("document.querySelectorAll('[data-testid=guard-table] tbody tr').length") == 3
    # the machine charts gain samples while the page is open
    first = page.evaluate("Number(document.querySelector('.chart').dataset.points)")
    page.wait_for(f"Number(document.querySelector('.chart').dataset.points) > {first}", timeout=60)
    page.evaluate("document.getElementById('recheck').click()")
    browser.pump(1.0)
    page.screenshot(shots / "system.png")
    assert page.errors() == []

    page = open_page(browser, dashboard, "#/auto", "auto")
    assert "auto mode not available" in page.evaluate(
        "document.querySelector('[data-testid=auto-unavailable]').innerText"
    )
    page.screenshot(shots / "auto.png")
    assert page.errors() == []


def test_live_run_page_updates_while_training(browser, dashboard, runs_dir, shots) -> None:
    live = LiveRun(runs_dir / "train" / "live")
    try:
        live.wait_rows(2)
        page = open_page(browser, dashboard, "#/runs", "runs")
        row = page.evaluate("document.querySelector('[data-run=\"train/live\"]').innerText")
        assert "live" in row
        page = open_page(browser, dashboard, run_hash("train/live"), "run")
        first = int(page.evaluate("document.body.dataset.rows"))
        steps0 = page.evaluate("document.querySelector('[data-testid=steps]').innerText")
        # new metrics rows reach the page's charts and cards without a reload
        page.wait_for(f"Number(document.body.dataset.rows) > {first} + 2", timeout=120)
        page.wait_for(f"document.querySelector('[data-testid=steps]').innerText !== {steps0!r}", timeout=60)
        assert "ETA" in page.text() and "live" in page.text()
        page.screenshot(shots / "run_live.png")
        assert page.evaluate("document.querySelector('[data-testid=stale]')") is None, page.text()[:500]
        assert page.errors() == []
    finally:
        live.kill()
    # killed: its status.json still says running, but the pid is gone -> failed (died)
    try:
        page = open_page(browser, dashboard, "#/runs?status=failed", "runs")
        page.wait_for("document.querySelector('[data-run=\"train/live\"]') !== null", timeout=30)
        assert "died" in page.evaluate("document.querySelector('[data-run=\"train/live\"]').title")
        assert page.errors() == []
    finally:
        shutil.rmtree(runs_dir / "train" / "live")  # the other tests count the runs
