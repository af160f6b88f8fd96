"""GRPO auto mode through the dashboard: a real `dspy-rl stream auto` (paused, token-protected control API) started
and stopped with the dashboard's POST /api/grpo/auto/start|stop, its cycles and levels on the API and in Chromium."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from .cdp import Browser, find_chromium


def _status(dash) -> dict:
    r = httpx.get(dash.url + "api/grpo/auto/status", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_auto_mode_status_start_cycles_stop(auto_mode, tmp_path) -> None:
    auto, dash = auto_mode
    s = _status(dash)
    assert s["paused"] is True and s["running"] is False and s["cycle"] == 0 and s["cycles"] == []
    assert s["control"] == "reachable" and s["levels"] == ["global", "signature", "patch"]
    started = httpx.post(dash.url + "api/grpo/auto/start", timeout=60)
    assert started.status_code == 200 and started.json()["running"] is True
    deadline = time.monotonic() + 300
    while _status(dash)["cycle"] < 1:
        assert time.monotonic() < deadline, "no cycle within 300 s"
        time.sleep(0.5)
    s = _status(dash)
    assert s["cycles"][0]["cycle"] == 0 and s["cycles"][0]["status"] == "trained"
    assert set(s["cycles"][0]["levels"]) == {"global", "signature", "patch"}
    stopped = httpx.post(dash.url + "api/grpo/auto/stop", timeout=60)
    assert stopped.status_code == 200 and stopped.json()["paused"] is True
    assert _status(dash)["running"] is False
    # the level trainers' checkpoint dirs are runs the dashboard lists
    runs = httpx.get(dash.url + "api/rl/sessions", timeout=60).json()["sessions"]
    assert {r["id"] for r in runs} >= {"auto/ckpts_global"}
    assert next(r for r in runs if r["id"] == "auto/ckpts_global")["algorithm"] == "grpo (level:global)"


@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_auto_page_shows_levels_cycles_and_stops(auto_mode, private_tmp) -> None:
    auto, dash = auto_mode
    shots = Path(os.environ.get("DSPY_RL_SCREENSHOT_DIR") or private_tmp / "screenshots")
    b = Browser(find_chromium())
    try:
        page = b.new_page()
        page.goto(dash.url + "#/auto")
        page.wait_for("document.body.dataset.ready === 'auto'")
        if "paused" not in page.evaluate("document.querySelector('[data-testid=auto-state]').innerText"):
            httpx.post(dash.url + "api/grpo/auto/stop", timeout=60)
        page.wait_for(
            "document.querySelector('[data-testid=auto-state]')?.innerText === 'paused'", timeout=60
        )
        page.evaluate("document.querySelector('[data-testid=auto-start]').click()")
        page.wait_for(
            "['running', 'in a cycle'].includes(document.querySelector('[data-testid=auto-state]')?.innerText)",
            timeout=60,
        )
        page.wait_for(
            "document.querySelectorAll('[data-testid=cycles] tbody tr td.num').length >= 2", timeout=300
        )
        page.evaluate("document.querySelector('[data-testid=auto-stop]').click()")
        page.wait_for(
            "document.querySelector('[data-testid=auto-state]')?.innerText === 'paused'", timeout=120
        )
        levels = page.evaluate(
            "[...document.querySelectorAll('[data-testid=levels] tbody tr')].map(r => r.innerText)"
        )
        assert [lv.split("\t")[0] for lv in levels] == ["global", "signature", "patch"]
        assert "Reward mean per level" in page.text()
        page.screenshot(shots / "auto_live.png")
        assert page.errors() == []
    finally:
        b.close()
