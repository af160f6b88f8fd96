"""Bad settings of `serve lm|proxy|policy` fail before Ray starts, with one line naming the key."""

from __future__ import annotations

import subprocess

import pytest


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["proxy", "port=8001"], "upstream=None is not allowed"),
        (["proxy", "upstream=ftp://x"], "upstream='ftp://x' is not allowed"),
        (["proxy", "upstream=http://127.0.0.1:9/v1", "stream=nats"], "stream='nats' is not allowed"),
        (["proxy", "upstream=http://127.0.0.1:9/v1", "stream=kafka", "port=0"], "port=0 is not allowed"),
        (["proxy", "upstream=http://127.0.0.1:9/v1", "store="], "store"),
        (["lm", "max_tokens_limit=0"], "max_tokens_limit=0 is not allowed"),
        (["lm", "auth_token_env=DSPY_RL_SURELY_UNSET_VAR"], "DSPY_RL_SURELY_UNSET_VAR"),
        (["lm", "model=/nonexistent/dir"], "no such directory"),
        (["policy"], "checkpoint=None is not allowed"),
        (["policy", "checkpoint=/nonexistent/run"], "does not exist"),
    ],
)
def test_bad_settings_fail_in_one_line(args, expected):
    r = subprocess.run(["dspy-rl", "serve", *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stderr.splitlines() if line.startswith("dspy-rl")]
    assert r.returncode == 2 and len(lines) == 1 and expected in lines[0], r.stderr
